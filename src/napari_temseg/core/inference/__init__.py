"""The predictor: a trained model over a stack of any size, streamed slice by slice.

:func:`predict_stack` (a generator: yields Progress, honours a StopToken, returns a
:class:`PredictResult`) reads tiles through :mod:`.tiling`'s grid, evens out the
illumination (:mod:`.flatfield`), freezes instance norm to the stack's statistics
(:mod:`.calibrate`), runs the batched forward passes (:mod:`.engine`) and writes per-slice
outputs (:mod:`.postprocess`). :mod:`.outputs` says which outputs a prediction makes, with
which shape and dtype, for every front end. :mod:`.distributed` maps the same predictor over a
Z-chunked dask array; :mod:`.folder` predicts files, folders and lists of images into files,
with :mod:`.jobs`' pre-flight checks and no partial outputs.
"""

from .distributed import predict_dask
from .outputs import OutputSpec, check_options, output_specs, prob_dtype, prob_shape
from .postprocess import class_labels, post_options
from .predict import PredictResult, predict_slice, predict_stack

__all__ = [
    "OutputSpec",
    "PredictResult",
    "check_options",
    "output_specs",
    "class_labels",
    "post_options",
    "predict_dask",
    "predict_slice",
    "predict_stack",
    "prob_dtype",
    "prob_shape",
]
