"""The pixel classifier network: ilastik's filter bank and a tree ensemble.

:mod:`.features` computes the filter bank in torch (CPU or GPU), :mod:`.forest` holds the
tree backend (extra trees; plain arrays, never pickles), :mod:`.module` wraps both as an
``nn.Module`` (registry name ``pixel-classifier``) so prediction, evaluation and the model
file take it as they take a U-Net. It learns in ``core/training/classifier.py`` (``fit``
dispatches there) and, stroke by stroke, in ``core/training/live.py``.
"""

from .features import feature_count, feature_names, filter_bank, halo
from .forest import BACKENDS, DEFAULT_BACKEND, make_forest

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "feature_count",
    "feature_names",
    "filter_bank",
    "halo",
    "make_forest",
]
