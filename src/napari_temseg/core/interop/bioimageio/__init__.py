"""bioimage.io model packages (spec 0.5): :mod:`.package` writes one from a trained model,
:mod:`.load` runs a local package (ours or another tool's) through the same predictor, with
the network around its weights in :mod:`.net`.
"""

from .load import is_package, load_any_model
from .package import export_package

__all__ = ["export_package", "is_package", "load_any_model"]
