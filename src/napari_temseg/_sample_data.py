"""napari sample data: File > Open Sample > napari-temseg.

The samples come from :mod:`napari_temseg.core.data.synthetic.fibsem` and
:mod:`napari_temseg.core.data.synthetic.phases` (fixed seed, so every user sees the same
data) with their ground truth as a Labels layer named ``"<image> ground truth"``:
train on a few painted slices, then compare the prediction with the ground truth in
the Evaluate dock. The phases sample is a 4-class one (matrix, pores, unhydrated
grains, hydration products); its Labels layer carries the class names and colours in
``metadata["temseg_classes"]`` and shows each class in its colour.

Channel decision for the FIB-SEM sample: the (Z, C, Y, X) stack is returned as
ONE layer-data tuple with ``channel_axis=1``, so napari shows it as two gray
(Z, Y, X) image layers, ``"fibsem ICE"`` (visible) and ``"fibsem TLD"`` (hidden,
toggle the eye to compare). We do not keep a single 4D layer because napari aligns
layers by their trailing axes: a (Z, Y, X) mask next to a (Z, C, Y, X) image would
follow the C slider instead of Z. The Train / Predict docks take several
same-shape layers as the channels of one image (select both), or either layer
alone as a one-channel image. Calling :func:`fibsem_sample` from Python still
gives the whole (Z, C, Y, X) array in ``result[0][0]``.
"""

from __future__ import annotations

FIBSEM_SHAPE = (16, 2, 384, 384)
PHASES_SHAPE = (16, 384, 384)  # x 2 detectors
PARTICLES_SHAPE = (512, 512)
SEED = 2024


def fibsem_sample() -> list[tuple]:
    """A 16 x 2 x 384 x 384 FIB-SEM-like stack (ICE + TLD detectors) and its mitochondria."""
    from .core.data.synthetic.fibsem import make_fibsem

    image, mask = make_fibsem(FIBSEM_SHAPE, seed=SEED)
    image_kwargs = {
        "name": ["fibsem ICE", "fibsem TLD"],
        "channel_axis": 1,
        "colormap": ["gray", "gray"],
        "blending": ["translucent_no_depth", "translucent_no_depth"],
        "visible": [True, False],
        "contrast_limits": [[0.0, 1.0], [0.0, 1.0]],
    }
    labels_kwargs = {"name": "fibsem ground truth", "opacity": 0.35, "visible": False}
    return [(image, image_kwargs, "image"), (mask, labels_kwargs, "labels")]


def phases_sample() -> list[tuple]:
    """A 16 x 2 x 384 x 384 multi-phase FIB-SEM-like stack (ICE + TLD) and its 4 classes."""
    from .core.data.synthetic.phases import PHASE_COLORS, PHASE_NAMES, make_phases

    image, labels = make_phases(PHASES_SHAPE, channels=2, seed=SEED)
    image_kwargs = {
        "name": ["phases ICE", "phases TLD"],
        "channel_axis": 1,
        "colormap": ["gray", "gray"],
        "blending": ["translucent_no_depth", "translucent_no_depth"],
        "visible": [True, False],
        "contrast_limits": [[0.0, 1.0], [0.0, 1.0]],
    }
    labels_kwargs = {
        "name": "phases ground truth",
        "opacity": 0.35,
        "visible": False,
        # a {label: colour} dict is a DirectLabelColormap for napari >= 0.4.19
        "colormap": {None: "transparent", **dict(enumerate(PHASE_COLORS))},
        "metadata": {"temseg_classes": {"names": list(PHASE_NAMES), "colors": list(PHASE_COLORS)}},
    }
    return [(image, image_kwargs, "image"), (labels, labels_kwargs, "labels")]


def particles_sample() -> list[tuple]:
    """A 512 x 512 TEM-like image of dark particles and its particle mask."""
    from .core.data.synthetic.particles import make_particles

    image, mask = make_particles(PARTICLES_SHAPE, seed=SEED)
    return [
        (image, {"name": "particles", "colormap": "gray", "contrast_limits": [0.0, 1.0]}, "image"),
        (mask, {"name": "particles ground truth", "opacity": 0.35, "visible": False}, "labels"),
    ]


__all__ = ["fibsem_sample", "particles_sample", "phases_sample"]
