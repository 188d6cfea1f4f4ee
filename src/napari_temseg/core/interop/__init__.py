"""Models other tools run, and models from other tools.

:mod:`.formats`: TorchScript and ONNX files of a trained model. :mod:`.bioimageio`: a trained
model as a bioimage.io package (``.zip``), and any local bioimage.io package run like one of
ours.
"""

from .bioimageio import export_package, load_any_model
from .formats import FORMATS, export

__all__ = ["FORMATS", "export", "export_package", "load_any_model"]
