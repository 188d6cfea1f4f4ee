"""Training: :func:`fit`, one generator for the docks, the CLI and the console.

:mod:`.trainset` turns images and masks into the training set (annotated slices, class table,
regions, input normalisation), :mod:`.sampling` splits regions and draws patches,
:mod:`.augment` augments batches on the training device, :mod:`.objectives` holds the losses
and validation scores, :mod:`.precise_bn` recomputes batch-norm statistics after training,
:mod:`.memory` holds the step's precision (fp16 loss scaling) and out-of-memory fallback,
:mod:`.gpucheck` the GPU self-check (``temseg doctor --gpu``).
:func:`fit` yields Progress, honours a StopToken and returns a
:class:`~napari_temseg.core.modelfile.TrainedModel`.
"""

from .loop import fit

__all__ = ["fit"]
