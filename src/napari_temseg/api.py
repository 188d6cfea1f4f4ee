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
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
from typing import Any

from .core.config import ConfigError, ModelConfig, TrainConfig
from .core.errors import InputError
from .core.progress import StopToken, run

__all__ = ["train", "predict", "evaluate", "load_model", "new_mask"]


def _is_layer(x: Any) -> bool:
    from ._widgets._layers import is_layer

    return is_layer(x)


def _layers_in(x: Any) -> list | None:
    """The layer(s) in ``x`` (one layer or a list of layers), else None."""
    if _is_layer(x):
        return [x]
    if isinstance(x, (list, tuple)) and x and all(_is_layer(i) for i in x):
        return list(x)
    return None


def _image(image: Any, channel_axis: int | None) -> tuple[Any, Any, bool]:
    """(image for the core, first layer or None, is 2D)."""
    from ._widgets import _layers as L

    layers = _layers_in(image)
    if layers is None:
        if isinstance(image, (list, tuple)):
            return list(image), None, False
        arr = image
        return arr, None, len(getattr(arr, "shape", ())) == 2
    vol = L.image_volume(layers, channel_axis)
    return vol, layers[0], L.is_2d(layers, channel_axis if len(layers) == 1 else None)


def _mask(mask: Any) -> Any:
    if isinstance(mask, (list, tuple)):
        return [_mask(m) for m in mask]
    return _data(mask)


def _data(x: Any) -> Any:
    from ._widgets._layers import layer_data

    return layer_data(x) if _is_layer(x) else x


def _train_config(seconds: float | None, epochs: int | None, sparse: bool, cfg: dict) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(cfg) - names)
    if unknown:
        raise ConfigError(f"unknown training option(s) {unknown}; valid: {sorted(names)}")
    return TrainConfig(seconds=seconds, epochs=epochs, sparse=sparse, **cfg)


def _model_config(model: str | ModelConfig | None, encoder: str | None, norm: str) -> ModelConfig | None:
    if isinstance(model, ModelConfig):
        return model
    if model is None and norm == "auto":
        return None
    from .core.models import DEFAULT_MODEL

    return ModelConfig(arch=str(model or DEFAULT_MODEL.arch), encoder=encoder, norm=norm)


@contextlib.contextmanager
def _ctrl_c_stops(stop: StopToken):
    """In the main thread, the first Ctrl-C asks the generator to stop (it still returns its
    result, e.g. the best model so far); a second Ctrl-C interrupts for real."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.request()
        print("stopping after this step (Ctrl-C again to abort)...", file=sys.stderr)

    try:
        old = signal.signal(signal.SIGINT, handler)
    except ValueError:  # no signal handling here (e.g. an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _drive(gen: Any, stop: StopToken, verbose: bool) -> Any:
    """Run a core generator to its result, printing progress to stderr."""
    from .cli import _Bar

    bar = _Bar(quiet=not verbose)
    try:
        with _ctrl_c_stops(stop):
            return run(gen, bar)
    finally:
        bar.close()


def train(
    image: Any, mask: Any, *, seconds: float | None = 120.0, epochs: int | None = None,
    model: str | ModelConfig | None = None, encoder: str | None = None, norm: str = "auto",
    context: int = 0, channel_axis: int | None = None, sparse: bool | None = None, resume: Any = None,
    annotated: list[int] | None = None, verbose: bool = True, stop: StopToken | None = None,
    **cfg: Any,
):
    """Train a U-Net on painted masks (the Train dock); returns a TrainedModel.

    ``cfg``: any TrainConfig field (patch, batch, lr, augment, val_fraction, device, ...).
    ``norm``: normalisation layers of the native models ("auto", "batch", "instance", "group").
    ``sparse`` defaults to what the Annotate dock recorded on the mask layer (else False).
    ``resume``: a TrainedModel to continue training ("Continue training").
    """
    from ._widgets._workers import avoid_triton_llvm_clash
    from .core.train import fit

    avoid_triton_llvm_clash()
    if sparse is None:
        meta = mask.metadata.get("napari_temseg") if _is_layer(mask) else None
        sparse = bool(meta.get("sparse")) if isinstance(meta, dict) else False
    if seconds is None and epochs is None:
        raise ConfigError("give seconds (a time budget) or epochs so training knows when to stop")
    img, _, _ = _image(image, channel_axis)
    stop = stop if stop is not None else StopToken()
    gen = fit(img, _mask(mask), train_cfg=_train_config(seconds, epochs, sparse, cfg),
              model_cfg=_model_config(model, encoder, norm), context=context,
              channel_axis=None if _layers_in(image) else channel_axis, annotated=annotated,
              resume=resume, stop=stop)
    return _drive(gen, stop, verbose)


def predict(
    model: Any, image: Any, *, viewer: Any = None, tile: int = 512, overlap: float = 0.25,
    batch: int = 4, tta: bool = False, threshold: float | None = None, device: str = "auto",
    channel_axis: int | None = None, name: str | None = None, verbose: bool = True,
) -> tuple[Any, Any]:
    """Segment ``image`` (the Predict dock); returns (probability float32, labels uint8).

    ``model``: a TrainedModel or a model file path. With ``viewer``, the results are also
    added as ``<image> probability`` / ``<image> prediction`` (replacing only layers this
    plugin made). Outputs have the image's spatial shape ((Y, X) for 2D images).
    """
    from ._widgets import _layers as L
    from ._widgets._workers import avoid_triton_llvm_clash
    from .core.data import as_volume
    from .core.predict import predict_stack

    avoid_triton_llvm_clash()
    if not hasattr(model, "input_spec"):
        model = load_model(model)
    img, layer, two_d = _image(image, channel_axis)
    if isinstance(img, list):
        raise InputError("predict takes one image (or a list of layers used as its channels)")
    vol = as_volume(img, channel_axis=None if layer is not None else channel_axis)
    prob, labels, _ = L.output_arrays(L.spatial_shape(vol, two_d))
    stop = StopToken()
    _drive(predict_stack(model, vol, prob_out=prob, labels_out=labels, tile=tile, overlap=overlap,
                         batch=batch, tta=tta, threshold=threshold, device=device, stop=stop),
           stop, verbose)
    if viewer is not None:
        _show(viewer, prob, labels, layer, name, channel_axis)
    return prob, labels


def _show(viewer: Any, prob: Any, labels: Any, layer: Any, name: str | None, ca: int | None) -> None:
    from ._widgets import _layers as L

    src = name or (layer.name if layer is not None else "image")
    tr = L.transform(layer, ca) if layer is not None else {}
    L.put_layer(viewer, "image", prob, role="probability", source=src, name=f"{src} probability",
                colormap="magma", blending="additive", contrast_limits=(0.0, 1.0), opacity=0.6, **tr)
    L.put_layer(viewer, "labels", labels, role="prediction", source=src, name=f"{src} prediction",
                opacity=0.5, **tr)


def evaluate(pred: Any, truth: Any, verbose: bool = True) -> dict:
    """Dice / IoU / precision / recall overall and per slice (the Evaluate dock)."""
    from .core.metrics import evaluate_stack

    res = evaluate_stack(_data(pred), _data(truth))
    if verbose:
        o = res["overall"]
        print(f"Dice {o['dice']:.3f}  IoU {o['iou']:.3f}  precision {o['precision']:.3f}  "
              f"recall {o['recall']:.3f}")
    return res


def load_model(path: Any, device: str = "cpu"):
    """Read a .safetensors model file written by Save model / ``model.save(path)``."""
    from ._widgets._workers import avoid_triton_llvm_clash
    from .core.modelfile import load_model as _load

    avoid_triton_llvm_clash()
    return _load(path, device=device)


def new_mask(viewer: Any, image: Any, channel_axis: int | None = None) -> Any:
    """The Annotate dock's "New mask": an empty ``<image> mask`` Labels layer (or the existing one)."""
    from ._widgets._layers import make_mask

    if not _is_layer(image):
        raise InputError("new_mask needs the image layer, e.g. viewer.layers['img']")
    return make_mask(viewer, image, channel_axis)
