"""A trained model and its single-file format (``.safetensors``, loaded without unpickling).

:class:`TrainedModel` holds the network with its configs and history; :mod:`.format` writes
and reads the file, :mod:`.header` checks every header field before a network is built.
"""

from .format import TrainedModel, load_model, read_metadata, save_model
from .header import FORMAT_VERSION, check_header

__all__ = [
    "FORMAT_VERSION",
    "TrainedModel",
    "check_header",
    "load_model",
    "read_metadata",
    "save_model",
]
