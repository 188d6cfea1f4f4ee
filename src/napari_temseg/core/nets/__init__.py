"""The networks: a registry from an architecture name to its builder and properties.

:func:`build_model` returns an ``nn.Module`` that maps a ``(N, C, H, W)`` input to logits;
:func:`required_multiple` and :func:`min_input_size` say which tile sizes a network accepts.
torch (and segmentation-models-pytorch for its architectures) is imported only when a network
is built.
"""

from .build import build_model, count_parameters, list_archs, min_input_size, required_multiple

__all__ = ["build_model", "count_parameters", "list_archs", "min_input_size", "required_multiple"]
