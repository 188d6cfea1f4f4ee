"""napari-temseg: paint a few masks, train a U-Net, segment the whole EM stack.

The console API lives in :mod:`napari_temseg.api` and is re-exported here
lazily (``napari_temseg.train``, ``.predict``, ``.evaluate``, ``.load_model``),
so importing the package stays fast and pulls in neither torch nor Qt.
"""

from .version import __version__

_API = ("train", "predict", "evaluate", "load_model")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'napari_temseg' has no attribute '{name}'")


__all__ = ["__version__", *_API]
