"""The training set of fit(): images and masks, annotated slices, the class table, the
training / validation regions and the input normalisation (numpy, CPU side)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config.classes import ClassTable
from ..config.model import InputSpec
from ..config.train import TrainConfig
from ..data.binning import auto_binning, mask_view, view
from ..data.volume import annotated_slices, as_mask, as_volume, compute_norm, mask_values
from ..errors import InputError
from ..modelfile.format import TrainedModel
from .objectives import background_counts
from .sampling import PatchSampler, split_regions


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def load_inputs(images: Any, masks: Any, channel_axis: int | None, sparse: bool):
    vols = [as_volume(im, channel_axis=channel_axis) for im in _as_list(images)]
    mvols_raw = _as_list(masks)
    if len(vols) != len(mvols_raw):
        raise InputError(
            f"got {len(vols)} image(s) but {len(mvols_raw)} mask(s): give one mask per image"
        )
    return vols, [as_mask(m, v) for m, v in zip(mvols_raw, vols, strict=False)]


def annotated_items(mvols: list, annotated: Sequence[int] | None) -> list[tuple[int, int]]:
    items = [(i, z) for i, m in enumerate(mvols) for z in annotated_slices(m, annotated)]
    if not items:
        raise InputError(
            "no annotated slice: every mask slice is empty. Paint some foreground (label 1) "
            "on at least one slice, or list the annotated slices explicitly (annotated=[...])"
        )
    return items


def check_labels(pixels: np.ndarray, sparse: bool, table: ClassTable, binning: int = 1) -> None:
    """Every class must be painted somewhere (binary: the messages of earlier versions);
    with ``binning`` > 1 the message says that binning may have merged a class away."""
    try:
        _check_labels(pixels, sparse, table)
    except InputError as e:
        if binning == 1:
            raise
        raise InputError(
            f"{e} - the masks were binned {binning} x {binning} and blocks take their most "
            "frequent label, so small painted areas can vanish: try binning 1 (--binning 1)"
        ) from None


def _check_labels(pixels: np.ndarray, sparse: bool, table: ClassTable) -> None:
    if table.binary:
        if not pixels[1]:
            raise InputError(
                "the masks have no foreground (label 1): paint the structures to segment"
            )
        if not pixels[0]:
            what = (
                "scribble some background with label 2"
                if sparse
                else "leave or paint some background (0)"
            )
            raise InputError(
                f"the masks have no background: {what}, or the model can only learn "
                "'all foreground'"
            )
        return
    missing = [c for c in range(table.k) if not pixels[c]]
    if missing:
        names = ", ".join(f"'{table.names[c]}'" for c in missing)
        values = ", ".join(str(table.value(c, sparse)) for c in missing)
        many = len(missing) > 1
        what = (
            f"classes {names} (labels {values}) have"
            if many
            else f"class {names} (label {values}) has"
        )
        hint = " (sparse scribbles need background strokes too)" if sparse and 0 in missing else ""
        raise InputError(
            f"{what} no painted pixel in the training data{hint}: paint some, or use fewer "
            "classes (--classes; dense masks number the classes 0..K-1 without gaps)"
        )


def class_table(cfg: TrainConfig, given: ClassTable | None, mvols, items, resume):
    """The class table of this training: given, from the options, resumed, or inferred."""
    from ..config.classes import infer_k, resolve

    table = resolve(given, cfg.classes, cfg.class_names)
    if resume is not None:
        if table is not None and table.k != resume.classes.k:
            raise InputError(
                f"cannot continue training: the model has {resume.classes.k} classes, "
                f"the data has {table.k}"
            )
        return table or resume.classes
    if table is not None:
        return table
    values: set[int] = set()
    for i, m in enumerate(mvols):
        values |= mask_values(m, [z for i2, z in items if i2 == i])
    return ClassTable.default(infer_k(values, cfg.sparse))


def training_binning(cfg: TrainConfig, mvols, items, resume: TrainedModel | None) -> int:
    """The binning of this training: the resumed model's, the option's, or ``auto``'s."""
    if resume is not None:
        have = resume.input_spec.binning
        if cfg.binning is not None and cfg.binning != have:
            raise InputError(
                f"cannot continue training with binning {cfg.binning}: the model was trained "
                f"binned {have} x {have}; leave binning on auto"
            )
        return have
    if cfg.binning is not None:
        return cfg.binning
    return auto_binning(mvols, items, cfg.sparse)


def _binned(vols, mvols, s: int, sparse: bool):
    return [view(v, s) for v in vols], [mask_view(m, s, sparse) for m in mvols]


def training_regions(
    cfg: TrainConfig,
    images,
    masks,
    channel_axis,
    val_images,
    val_masks,
    annotated,
    resume=None,
    binning: int | None = None,
):
    """Binning, volumes and masks as the network sees them, annotated (image, z), and the
    training / validation regions. ``binning`` overrides the option's / auto's choice."""
    vols, mvols = load_inputs(images, masks, channel_axis, cfg.sparse)
    items = annotated_items(mvols, annotated)
    s = binning or training_binning(cfg, mvols, items, resume)
    vols, mvols = _binned(vols, mvols, s, cfg.sparse)
    if val_images is None:
        train_r, val_r = split_regions(
            items, [v.shape[2:] for v in vols], cfg.val_fraction, cfg.seed
        )
        return s, vols, mvols, items, train_r, val_r
    vv, vm = _binned(*load_inputs(val_images, val_masks, channel_axis, cfg.sparse), s, cfg.sparse)
    val_items = [(i + len(vols), z) for i, z in annotated_items(vm, None)]
    shapes = [v.shape[2:] for v in vols + vv]
    train_r, _ = split_regions(items, shapes, 0.0, cfg.seed)
    val_r, _ = split_regions(val_items, shapes, 0.0, cfg.seed)
    return s, vols + vv, mvols + vm, items, train_r, val_r


def input_spec(
    vols, items, context: int, resume: TrainedModel | None, intensity_norm: str, binning: int = 1
) -> InputSpec:
    if resume is not None:
        want, got = resume.input_spec.channels, vols[0].shape[1]
        if want != got:
            raise InputError(
                f"cannot continue training: the model takes {want} channel(s), "
                f"the image has {got}; use the image the model was trained on"
            )
        return resume.input_spec
    if context > 0 and all(v.shape[0] == 1 for v in vols):
        raise InputError(
            f"context={context} needs neighbouring slices, but every image is a single slice: "
            "use context=0 for 2D images"
        )
    per_image = [[z for i2, z in items if i2 == i] for i in range(len(vols))]
    lo, hi = compute_norm(vols, per_image)
    return InputSpec(
        channels=vols[0].shape[1],
        context=context,
        norm_lo=lo,
        norm_hi=hi,
        intensity_norm=intensity_norm,
        binning=binning,
    )


@dataclass
class TrainingData:
    """What fit() trains on: the class table, input spec (with the binning), samplers and the
    painted pixels per class (of the training regions, and of training + validation)."""

    classes: ClassTable
    spec: InputSpec
    sampler: PatchSampler
    val_sampler: PatchSampler | None
    train_pixels: np.ndarray
    pixels: np.ndarray


def _training_data(cfg: TrainConfig, inputs: tuple, given, resume, binning=None) -> TrainingData:
    binning, vols, mvols, items, train_r, val_r = training_regions(cfg, *inputs, resume, binning)
    painted = [getattr(m, "source", m) for m in mvols]  # classes: as painted, unbinned
    table = class_table(cfg, given, painted, items, resume)
    spec = input_spec(vols, items, cfg.context, resume, cfg.intensity_norm, binning)
    args = (spec, cfg.patch, cfg.sparse)
    kw = {"k": table.k, "background": background_counts(cfg)}
    sampler = PatchSampler(vols, mvols, train_r, *args, cfg.foreground_oversample, cfg.seed, **kw)
    val = PatchSampler(vols, mvols, val_r, *args, 0.0, cfg.seed, **kw) if val_r else None
    train_pixels = sampler.class_pixels()
    pixels = train_pixels + (val.class_pixels() if val else 0)
    return TrainingData(table, spec, sampler, val, train_pixels, pixels)


def training_data(
    cfg: TrainConfig, inputs: tuple, given: ClassTable | None, resume: TrainedModel | None
) -> tuple[TrainingData, str | None]:
    """The checked training data of fit() and a notice for the user (or None).

    ``inputs``: images, masks, channel_axis, val_images, val_masks, annotated. When auto's
    binning merges away a class painted only in specks, training falls back to binning 1."""
    d = _training_data(cfg, inputs, given, resume)
    try:
        check_labels(d.pixels, cfg.sparse, d.classes, d.spec.binning)
        return d, split_warning(d, cfg.sparse)
    except InputError:
        if d.spec.binning == 1 or resume is not None or cfg.binning is not None:
            raise  # binning 1, or set by hand / by the resumed model: the message says what to do
    notice = (
        f"binning {d.spec.binning} would merge away small painted areas: training at "
        "full resolution (binning 1)"
    )
    d = _training_data(cfg, inputs, given, resume, binning=1)
    check_labels(d.pixels, cfg.sparse, d.classes)
    return d, "; ".join(w for w in (notice, split_warning(d, cfg.sparse)) if w)


def split_warning(d: TrainingData, sparse: bool) -> str | None:
    """The classes painted only in the validation part: the model never learns them."""
    only_val = [c for c in range(d.classes.k) if d.pixels[c] and not d.train_pixels[c]]
    if not only_val:
        return None
    names = ", ".join(
        f"'{d.classes.names[c]}' (label {d.classes.value(c, sparse)})" for c in only_val
    )
    return (
        f"the training part of the data has no painted pixel of {names}: all of it lies in "
        "the part held out for validation, so the model cannot learn it. Paint it on more "
        "slices or in more places of the slice (or give separate validation images)"
    )
