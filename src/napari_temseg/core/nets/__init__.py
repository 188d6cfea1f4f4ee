"""The networks: a registry from an architecture name to its builder and properties.

:mod:`.registry` holds one :class:`~.registry.Arch` entry per architecture (the only place a
name is spelled out; its docstring says how to add one). :func:`build_model` returns an
``nn.Module`` that maps a ``(N, C, H, W)`` input to logits; :func:`required_multiple` and
:func:`min_input_size` say which tile sizes a network accepts. torch (and
segmentation-models-pytorch for its architectures) is imported only when a network is built.
"""

from .build import build_model, min_input_size, required_multiple
from .registry import ARCHS, Arch, arch_of

__all__ = [
    "ARCHS",
    "Arch",
    "arch_of",
    "build_model",
    "min_input_size",
    "required_multiple",
]
