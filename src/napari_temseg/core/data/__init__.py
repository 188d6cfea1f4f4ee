"""Images and masks as the rest of the core sees them.

:mod:`.volume` wraps numpy, dask, zarr or memory-mapped arrays as a lazy ``(Z, C, Y, X)``
:class:`Volume` and holds the mask rules, the annotated slices, 2.5D context and input
normalisation. :mod:`.read` reads TIFF / PNG / zarr files and folders lazily, :mod:`.write`
creates outputs written slice by slice (marked as ours, never overwriting a user's file),
:mod:`.binning` the binned views a binned network trains and predicts on, and
:mod:`.synthetic` the seeded generators with exact ground truth used by tests, demos and
benchmarks.
"""

from .read import is_image_folder, list_images, list_pairs, read_image, read_training_set
from .volume import (
    Volume,
    annotated_slices,
    as_mask,
    as_volume,
    check_channels,
    normalize,
    read_mask,
)
from .write import check_output_path, create_output, is_own_output, remove_output, writable_folder

__all__ = [
    "Volume",
    "annotated_slices",
    "as_mask",
    "as_volume",
    "check_channels",
    "check_output_path",
    "create_output",
    "is_image_folder",
    "is_own_output",
    "list_images",
    "list_pairs",
    "normalize",
    "read_image",
    "read_mask",
    "read_training_set",
    "remove_output",
    "writable_folder",
]
