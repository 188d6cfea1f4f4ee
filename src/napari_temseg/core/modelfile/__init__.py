"""A trained model and its single-file format (``.safetensors``, loaded without unpickling).

:class:`TrainedModel` holds the network with its configs and history; :mod:`.format` reads
the file, :mod:`.header` checks every header field before a network is built, :mod:`.save`
writes it (atomically, with a rescue folder when the target cannot take it).
"""

from .format import TrainedModel, load_model, read_metadata
from .header import FORMAT_VERSION, check_header
from .save import SaveResult, save_model, save_or_rescue

__all__ = [
    "FORMAT_VERSION",
    "SaveResult",
    "TrainedModel",
    "check_header",
    "load_model",
    "read_metadata",
    "save_model",
    "save_or_rescue",
]
