"""Batched data augmentation on the training device (GPU when there is one).

:class:`Augmenter` applies a preset to an (image, target, weight) batch; :mod:`.kernels` holds
its random draws and the geometric and intensity operations.
"""

from .augmenter import Augmenter

__all__ = ["Augmenter"]
