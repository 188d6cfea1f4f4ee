"""Console API: the same operations as the docks, for scripts and the napari console.

Everything takes napari layers *or* plain arrays; napari is never imported here, so
the functions work in any Python session::

    from napari_temseg import api
    model = api.train(viewer.layers["img"], viewer.layers["img mask"], seconds=120)
    prob, labels = api.predict(model, viewer.layers["img"], viewer=viewer)
    api.evaluate(labels, viewer.layers["img ground truth"])
    model.save("mito.safetensors")
    model = api.load_model("mito.safetensors")

Images: an array (2D, (Z, Y, X), or with a channel axis: pass ``channel_axis``), an
Image layer, or a list of Image layers used as the channels of one image. A list of
*arrays* is several training images (then ``mask`` is a list too). Progress is printed
to stderr; Ctrl-C stops training and returns the best model so far.

The options of :func:`train` and :func:`predict` are the fields of ``TrainConfig`` /
``ModelConfig`` and ``PredictConfig`` (``core/config/model.py``): the same names and defaults
as the flags of ``temseg train`` / ``temseg predict`` and the settings of the docks.
``help(api.train)`` lists them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .adapters.console import (
    class_table,
    data_of,
    image_input,
    is_layer,
    layers_in,
    mask_classes,
    mask_input,
    sparse_from_layer,
    training_arrays,
    with_options,
)
from .core.config.options import PREDICT_CLASSES, TRAIN_CLASSES, predict_config, train_configs
from .core.errors import InputError
from .core.progress import StopToken

__all__ = [
    "train",
    "predict",
    "evaluate",
    "class_fractions",
    "learning_curve",
    "suggest_regions",
    "measure",
    "export",
    "load_model",
    "new_mask",
    "classes_of",
    "gpu_check",
]


def classes_of(layer: Any) -> Any:
    """The class table (ClassTable) recorded on a layer (Annotate dock), or None."""
    from .adapters.layers import classes_of as read

    return read(layer)


def _drive(gen: Any, stop: StopToken, verbose: bool) -> Any:
    from .core.progress import drive

    return drive(gen, stop, quiet=not verbose)


def train(
    image: Any,
    mask: Any,
    *,
    resume: Any = None,
    annotated: list[int] | None = None,
    channel_axis: int | None = None,
    verbose: bool = True,
    stop: StopToken | None = None,
    **options: Any,
):
    """Train a U-Net on painted masks (the Train dock); returns a TrainedModel.

    ``resume``: a TrainedModel to continue training ("Continue training"). ``annotated``:
    the slices to learn from, even empty ones (default: the slices with paint).
    ``sparse`` defaults to what the Annotate dock recorded on the mask layer, and the
    classes (names, colours) to the mask layer's class table (Annotate dock); without one,
    ``classes`` / ``class_names`` or the mask values decide (0..K-1; K = 2 is binary).
    Options:
    """
    from .adapters.runtime import avoid_triton_llvm_clash
    from .core.training.loop import fit

    avoid_triton_llvm_clash()
    if "sparse" not in options:
        options["sparse"] = sparse_from_layer(mask)
    tcfg, mcfg = train_configs(options)
    table = mask_classes(mask, options)
    img, _, _ = image_input(image, channel_axis)
    stop = stop if stop is not None else StopToken()
    gen = fit(
        img,
        mask_input(mask),
        train_cfg=tcfg,
        model_cfg=mcfg,
        channel_axis=None if layers_in(image) else channel_axis,
        annotated=annotated,
        resume=resume,
        classes=table,
        stop=stop,
    )
    model = _drive(gen, stop, verbose)
    from .core.training.teacher import comparison

    if verbose and comparison(model):  # a taught U-Net: which of the two models is returned
        print(comparison(model))
    return model


def predict(
    model: Any,
    image: Any,
    *,
    viewer: Any = None,
    channel_axis: int | None = None,
    slices: list[int] | None = None,
    name: str | None = None,
    verbose: bool = True,
    stop: StopToken | None = None,
    output: Any = None,
    labels_output: Any = None,
    format: str = ".tif",
    overwrite: bool = False,
    scheduler: str | None = None,
    **options: Any,
) -> Any:
    """Segment ``image`` (the Predict dock); returns (probability, labels).

    A K-class model returns probabilities with a class axis before Y ((Z, K, Y, X) or
    (K, Y, X), float16 by default) and class ids as labels (0 = background; ``K`` =
    'unsure' where the top class is below ``min_confidence``); in the viewer one
    probability layer per class and a prediction coloured from the model's class table.

    With ``uncertainty=True`` (needs ``tta=True``) it returns (probability, labels,
    uncertainty). ``model``: a TrainedModel or a model file path. With ``viewer``, the
    results are also added as ``<image> probability`` / ``<image> prediction`` (replacing
    only layers this plugin made). Outputs have the image's spatial shape ((Y, X) for 2D
    images).

    Files (``temseg predict``): ``image`` an image file, a folder of images or a list of
    files and ``output`` a file (one image) or a folder receiving one ``<stem><format>``
    per image (.tif, .zarr); ``labels_output`` the same for labels; ``overwrite`` replaces
    only outputs napari-temseg wrote; ``scheduler``: a dask.distributed address (zarr
    outputs). Everything is checked before the first file is written, and a failed or
    stopped image leaves no file behind. Returns a FolderResult (``.files``: one per image
    done; ``.stopped``). One image file without ``output`` is read and predicted in memory.
    Options:
    """
    from .adapters import console as C
    from .adapters.runtime import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()
    cfg = predict_config(options)
    stop = stop if stop is not None else StopToken()
    files, image = C.file_input(image, output, labels_output, viewer, channel_axis)
    if files is not None:
        run = dict(labels=labels_output, fmt=format, overwrite=overwrite, scheduler=scheduler)
        return C.predict_into_files(
            model, files, output, cfg, channel_axis, slices, stop, verbose, run
        )
    if not hasattr(model, "input_spec"):
        model = load_model(model)
    return C.predict_arrays(model, image, cfg, viewer, channel_axis, slices, name, stop, verbose)


with_options(train, TRAIN_CLASSES)
with_options(predict, PREDICT_CLASSES)


def evaluate(pred: Any, truth: Any, classes: Any = None, verbose: bool = True) -> dict:
    """Dice / IoU / precision / recall overall and per slice (the Evaluate dock).

    Multi-class (``classes``: a TrainedModel, a ClassTable, a list of names, or taken from
    the prediction layer's class table): per-class scores, mean IoU with and without
    background, the confusion matrix and per-slice class shares.
    """
    from .core.evaluation.metrics import evaluate_classes, evaluate_stack
    from .core.evaluation.report import class_table_text, scores_text

    table = class_table(classes, pred)
    if table is None or table.binary:
        res = evaluate_stack(data_of(pred), data_of(truth))
        if verbose:
            print(scores_text(res["overall"]))
        return res
    res = evaluate_classes(data_of(pred), data_of(truth), table.names)
    if verbose:
        print(class_table_text(res))
    return res


def class_fractions(labels: Any, classes: Any = None) -> list[dict]:
    """Area (2D) / volume share of every class per slice and overall ('all'), e.g. the phase
    fractions of a FIB-SEM volume; ``classes`` as in :func:`evaluate`."""
    from .core.config.classes import ClassTable
    from .core.evaluation.metrics import class_fractions as fractions

    table = class_table(classes, labels)
    if table is None:
        data = data_of(labels)
        table = ClassTable.default(max(2, int(np.max(data)) + 1))
    return fractions(data_of(labels), table.names)


def learning_curve(
    images: Any,
    masks: Any,
    *,
    sizes: list[int] | None = None,
    seeds: int = 1,
    test_fraction: float = 0.2,
    compare_augment: bool = False,
    flat_within: float = 0.02,
    test_images: Any = None,
    test_masks: Any = None,
    output: Any = None,
    verbose: bool = True,
    stop: StopToken | None = None,
    **options: Any,
) -> Any:
    """How much to annotate: train on nested random subsets of ``sizes`` images (default: 5,
    10, 25, ... up to all), the same budget each (``seconds`` / ``epochs``), and score on
    held-out images (``test_images`` / ``test_masks``, else a ``test_fraction`` of the
    images). ``images`` / ``masks``: lists of arrays, or two folders. ``output``: a folder
    that receives curve.csv and curve.png. Prints the table with the point where the curve
    flattens; returns the CurveResult (``.rows``: one per trained model). Other keywords:
    the options of :func:`train`."""
    from pathlib import Path

    from .core.guidance import learning_curve as lc

    cfg = lc.CurveConfig(sizes, seeds, test_fraction, compare_augment, flat_within)
    tcfg, mcfg = train_configs(options)
    images, masks = training_arrays(images, masks)
    if test_images is not None:
        test_images, test_masks = training_arrays(test_images, test_masks)
    stop = stop if stop is not None else StopToken()
    gen = lc.learning_curve(
        images, masks, cfg, tcfg, mcfg, test_images=test_images, test_masks=test_masks, stop=stop
    )
    result = _drive(gen, stop, verbose)
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
        lc.write_csv(result, Path(output) / "curve.csv")
        lc.plot(result, Path(output) / "curve.png", flat_within)
    if verbose:
        print(lc.table(result, flat_within))
    return result


with_options(learning_curve, TRAIN_CLASSES)


def suggest_regions(
    model: Any,
    image: Any,
    mask: Any = None,
    *,
    viewer: Any = None,
    channel_axis: int | None = None,
    sparse: bool | None = None,
    verbose: bool = True,
    stop: StopToken | None = None,
    **options: Any,
) -> Any:
    """Where to paint next (the Annotate dock's "Suggest regions"): squares of ``image`` that
    ``mask`` does not annotate yet, ranked by the model's uncertainty and spread out
    (``core/guidance/suggest.py``). Returns a SuggestResult: ``.regions`` (rank, z, y, x, height,
    width, score), ``.table()``, ``.score_map``. ``sparse``: the mask holds scribbles (default:
    what the Annotate dock recorded on the mask layer). With ``viewer`` the regions are drawn
    as ``<image> suggestions`` over ``<image> uncertainty (regions)``. Options: the fields of
    SuggestConfig (n, size, score, max_regions, diversity, z_distance, margin, painted, seed)
    and the prediction's tile, batch, device, amp.
    """
    from .core.config.options import build, check_suggest_names
    from .core.config.suggest import PREDICT_OPTIONS, SuggestConfig
    from .core.guidance.suggest import suggest_regions as suggest

    check_suggest_names(options)
    if not hasattr(model, "input_spec"):
        model = load_model(model)
    img, layer, two_d = image_input(image, channel_axis)
    sparse = sparse_from_layer(mask) if sparse is None else bool(sparse)
    stop = stop if stop is not None else StopToken()
    gen = suggest(
        model,
        img,
        None if mask is None else data_of(mask),
        build(SuggestConfig, options),
        sparse=sparse,
        predict_cfg=predict_config({k: v for k, v in options.items() if k in PREDICT_OPTIONS}),
        channel_axis=None if layer is not None else channel_axis,
        stop=stop,
    )
    res = _drive(gen, stop, verbose)
    if viewer is not None:
        from .adapters import layers as L
        from .adapters import suggest as S

        src = layer.name if layer is not None else "image"
        tr = L.transform(layer, channel_axis) if layer is not None else {}
        S.show_regions(viewer, res, src, tr, two_d)
        S.show_score_map(viewer, res, src, tr, two_d)
    return res


def measure(
    labels: Any,
    image: Any = None,
    *,
    pixel_size: Any = None,
    unit: str | None = None,
    classes: bool | None = None,
    class_names: Any = None,
    output: Any = None,
    verbose: bool = True,
) -> Any:
    """One row per object and slice in physical units (a pandas DataFrame): area,
    equivalent diameter, perimeter, axes, eccentricity, solidity, centroid, mean intensity
    per channel of ``image``. ``labels``: a Labels layer or an array of object ids, or a
    0/1 mask / class map (split into connected components per class; ``classes=`` decides).
    A layer's scale (and units) give the pixel size unless ``pixel_size`` / ``unit`` are
    given; without either the sizes are in pixels. ``output``: also write a CSV file."""
    from .adapters.measure import measure_layers

    df = measure_layers(
        labels, image, pixel_size=pixel_size, unit=unit, classes=classes, class_names=class_names
    )
    if output is not None:
        df.to_csv(output, index=False)
    if verbose:
        area = next(c for c in df.columns if c.startswith("area_"))
        print(f"{len(df)} object(s); sizes in {area[5:-1]}")
    return df


def export(model: Any, path: Any, format: str | None = None, overwrite=False, **package) -> Any:
    """``model`` as TorchScript (.pt), ONNX (.onnx) or bioimage.io package (.zip; ``author=``,
    ``license=``): raw intensities in, probabilities out, checked (core/interop/formats.py)."""
    from .core.interop.formats import export as export_

    return export_(model, path, format, overwrite=overwrite, **package)


def load_model(path: Any, device: str = "cpu"):
    """A .safetensors model file (``model.save(path)``) or a bioimage.io package (.zip / folder)."""
    from .adapters.runtime import avoid_triton_llvm_clash
    from .core.interop.bioimageio.load import load_any_model

    avoid_triton_llvm_clash()
    return load_any_model(path, device=device)


def new_mask(viewer: Any, image: Any, channel_axis: int | None = None) -> Any:
    """The Annotate dock's "New mask": an empty ``<image> mask`` Labels layer
    (or the existing one).
    """
    from .adapters.layers import make_mask

    if not is_layer(image):
        raise InputError("new_mask needs the image layer, e.g. viewer.layers['img']")
    return make_mask(viewer, image, channel_axis)


def gpu_check(seconds: float = 5.0, verbose: bool = True) -> Any:
    """``temseg doctor --gpu``: train a small model for ``seconds`` and predict a synthetic
    stack on the GPU, compared with the CPU. Returns a GpuCheck (``.ok``: True / False, None
    without a GPU; ``.steps_per_s``, ``.mpix_per_s``, ``.device``); printed with ``verbose``."""
    from .core.training.gpucheck import gpu_check as check

    stop = StopToken()  # Ctrl-C: the training part ends early, the checks still run
    result = _drive(check(seconds=seconds, stop=stop), stop, verbose)
    if verbose:
        print(result)
    return result
