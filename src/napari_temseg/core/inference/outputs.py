"""What a prediction produces: every output's shape and dtype, and whether the options fit the
model - one answer for the CLI, the docks, the console and the dask path.

A prediction of a ``(Z, Y, X)`` (or ``(Y, X)``) image with a K-class model writes:

* ``probability``: the image's shape, with a class axis before Y for K >= 3
  (``(Z, K, Y, X)``); dtype from the option ``prob_dtype`` ('auto': float32 for binary
  models, float16 for K classes; uint8 stores round(255 p));
* ``labels``: the image's shape; uint8 (0/1, or class ids with 'unsure' = K), uint32 object
  ids with ``instances``;
* ``uncertainty`` (with ``uncertainty``): the image's shape, float32 (the variance of the
  test-time views).

The model-vs-image channel check lives with the volumes (``data.volume.check_channels``),
since the predictor's reader checks every slice it reads with it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

PROB_DTYPES = ("float32", "float16", "float64", "uint8")
OUTPUT_NAMES = ("probability", "labels", "uncertainty")


@dataclass(frozen=True)
class OutputSpec:
    """One output of a prediction: its name (one of OUTPUT_NAMES), shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def check_prob_dtype(dtype: Any, name: str = "probability") -> np.dtype:
    """float32 / float16 (/ float64) store probabilities as is; uint8 stores round(255 p)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in PROB_DTYPES:
        raise InputError(
            f"the {name} output must be float32, float16 or uint8 (0-255), got {dtype}"
        )
    return dt


def prob_dtype(name: str, k: int = 2) -> np.dtype:
    """The probability output dtype of the option ``prob_dtype`` for a K-class model
    ('auto': float32 binary, float16 for K classes - K maps per pixel stay compact)."""
    if name == "auto":
        return np.dtype(np.float32 if k == 2 else np.float16)
    return check_prob_dtype(name)


def prob_shape(spatial: tuple, k: int = 2) -> tuple:
    """Shape of the probability output: the image's (Z, Y, X) / (Y, X), with a class axis
    before Y for K >= 3 classes ((Z, K, Y, X) / (K, Y, X))."""
    spatial = tuple(int(n) for n in spatial)
    return spatial if k == 2 else (*spatial[:-2], k, *spatial[-2:])


def labels_dtype(cfg: Any) -> np.dtype:
    """uint32 object ids with ``cfg.instances`` (ids run on across the slices), else uint8."""
    return np.dtype(np.uint32 if cfg.instances else np.uint8)


def output_specs(spatial: tuple, cfg: Any, k: int = 2) -> tuple[OutputSpec, ...]:
    """(probability, labels[, uncertainty]) of a prediction of an image of spatial shape
    ``spatial`` ((Z, Y, X) or (Y, X)) with the PredictConfig ``cfg`` and a ``k``-class model."""
    spatial = tuple(int(n) for n in spatial)
    specs = [
        OutputSpec("probability", prob_shape(spatial, k), prob_dtype(cfg.prob_dtype, k)),
        OutputSpec("labels", spatial, labels_dtype(cfg)),
    ]
    if cfg.uncertainty:
        specs.append(OutputSpec("uncertainty", spatial, np.dtype(np.float32)))
    return tuple(specs)


def check_instances(cfg: Any, classes: Any, fix: str = "turn instances off") -> None:
    """Instance labels split the foreground of a binary model into objects; a K-class
    model has no one foreground. ``fix``: how the caller's user turns the option off."""
    if cfg.instances and not classes.binary:
        raise InputError(
            f"instance labels are for binary models; this model segments {classes.k} classes "
            f"({', '.join(classes.names)}): {fix}"
        )


def check_options(model: Any, cfg: Any, fix_instances: str = "turn instances off") -> None:
    """The PredictConfig ``cfg`` checked against ``model`` before any output is made:
    instance labels (binary models only) and the tile size (the network's stride)."""
    from ..nets.build import required_multiple
    from .tiling import check_tile

    check_instances(cfg, model.classes, fix_instances)
    check_tile(cfg.tile, required_multiple(model.model_cfg))


__all__ = [
    "OUTPUT_NAMES",
    "PROB_DTYPES",
    "OutputSpec",
    "check_instances",
    "check_options",
    "check_prob_dtype",
    "labels_dtype",
    "output_specs",
    "prob_dtype",
    "prob_shape",
]
