"""The predictor: a trained model over a stack of any size, streamed slice by slice.

:func:`predict_stack` (a generator: yields Progress, honours a StopToken, returns a
:class:`PredictResult`) reads tiles through :mod:`.tiling`'s grid, evens out the
illumination (:mod:`.flatfield`), freezes instance norm to the stack's statistics
(:mod:`.calibrate`), runs the batched forward passes (:mod:`.engine`) and writes per-slice
outputs (:mod:`.postprocess`). :mod:`.distributed` maps the same predictor over a Z-chunked
dask array.
"""

from .distributed import predict_dask
from .postprocess import class_labels, post_options, prob_dtype, prob_shape
from .predict import PredictResult, predict_slice, predict_stack

__all__ = [
    "PredictResult",
    "class_labels",
    "post_options",
    "predict_dask",
    "predict_slice",
    "predict_stack",
    "prob_dtype",
    "prob_shape",
]
