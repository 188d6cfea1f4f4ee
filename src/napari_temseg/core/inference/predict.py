"""Tiled, blended inference on (Z, C, Y, X) stacks of any size, streamed slice by slice.

Pipeline: a background thread reads one row of tiles ("band") of a slice at a time
through ``data.network_input`` (the model's normalisation, 2.5D context, channel
order), cuts it into tiles and packs batches (bounded queue, 2 batches ahead). The
calling thread runs the network under ``torch.inference_mode`` (channels_last
memory format on CPU and CUDA; bf16/fp16 autocast on CUDA, bf16 on CPUs with native
bf16 units - see ``amp``), turns each tile's logits into probabilities
(``sigmoid``) and adds them, times the blend weights, into a float32 accumulator
of *one slice* on the device. A finished slice is divided by the summed weights,
cropped, and handed to a writer thread that converts the dtype, thresholds,
post-processes and writes ``out[z] = ...`` into the caller's array-likes (numpy,
zarr, memmap TIFF). Memory is therefore a few bands + one or two slice
accumulators, never the stack.

We blend **probabilities**, not logits (as nnU-Net v1 blended softmax outputs): a
tile's contribution is bounded to [0, 1] x weight, so one over-confident logit at a
tile edge (zero-padding artefacts) cannot outvote the neighbouring tiles, and
test-time augmentation averages and its variance ("uncertainty") live on the same
probability scale. Padding: an axis shorter than the tile is reflect-padded to
the network stride (``models.required_multiple``), and at least to the network's smallest
input (``models.min_input_size``: two strides for instance norm); otherwise tiles fit inside.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.binning import Unbinned
from ..data.volume import Volume, as_volume, network_input
from ..device import resolve_device
from ..errors import InputError
from ..modelfile.format import TrainedModel
from ..progress import Progress, StopToken, run
from ..threads import Worker
from . import flatfield, tiling
from .engine import Engine
from .outputs import check_instances
from .postprocess import SliceWriter


@dataclass
class PredictResult:
    """Outputs of :func:`predict_stack` (the caller's arrays or the ones made for it) + stats."""

    prob: Any = None
    labels: Any = None
    uncertainty: Any = None
    slices: list[int] = field(default_factory=list)  # slices finished and written
    tiles: int = 0
    seconds: float = 0.0
    mpix_per_s: float = 0.0
    stopped: bool = False
    device: str = "cpu"


class _Plan:
    """Tile geometry of one slice (the same for every slice of the stack)."""

    def __init__(
        self,
        shape_yx: Sequence[int],
        tile: int,
        overlap: float,
        multiple: int,
        blend: str,
        min_size: int = 1,
    ):
        self.Y, self.X = int(shape_yx[0]), int(shape_yx[1])
        self.ty, self.tx = tiling.tile_shape(
            (self.Y, self.X), tiling.check_tile(tile, multiple), multiple, min_size
        )
        # padded plane: a multiple of the stride, at least a tile; tiles start on the stride
        self.PY = max(tiling.round_up(self.Y, multiple), self.ty)
        self.PX = max(tiling.round_up(self.X, multiple), self.tx)
        self.ys = tiling.aligned_starts(self.PY, self.ty, overlap, multiple)
        self.xs = tiling.aligned_starts(self.PX, self.tx, overlap, multiple)
        self.n = len(self.ys) * len(self.xs)
        self.weights = tiling.blend_weights((self.ty, self.tx), blend)
        self.wsum = tiling.weight_sum(
            (self.PY, self.PX), [(y, x) for y in self.ys for x in self.xs], self.weights
        )


def _batches(vol: Volume, spec: Any, plan: _Plan, slices: Sequence[int], batch: int) -> Iterator:
    """(tiles (n, Cin, ty, tx) float32, [(z, y0, x0)]) read band by band."""
    cin = spec.network_channels
    buf, meta = np.empty((batch, cin, plan.ty, plan.tx), np.float32), []
    for z in slices:
        for y0 in plan.ys:
            band = network_input(vol, z, spec, slice(y0, min(y0 + plan.ty, plan.Y)), slice(None))
            band = tiling.pad_to(band, (plan.ty, plan.PX))
            for x0 in plan.xs:
                buf[len(meta)] = band[:, :, x0 : x0 + plan.tx]
                meta.append((z, y0, x0))
                if len(meta) == batch:
                    yield buf, meta
                    buf, meta = np.empty_like(buf), []
    if meta:
        yield buf[: len(meta)], meta


def _check_args(model: Any, cfg: Any) -> tuple[Any, float]:
    """(PredictConfig, threshold to use): the config checked against the model."""
    from ..config.predict import PredictConfig

    if not isinstance(model, TrainedModel):
        raise InputError(
            "predict needs a TrainedModel (modelfile.load_model(path) or a train() result)"
        )
    cfg = PredictConfig() if cfg is None else cfg
    if not isinstance(cfg, PredictConfig):
        raise InputError(
            f"predict_stack takes a PredictConfig as its third argument, got {type(cfg).__name__}"
        )
    check_instances(cfg, model.classes)
    return cfg, model.threshold if cfg.threshold is None else float(cfg.threshold)


def _slices(slices: Sequence[int] | None, depth: int) -> list[int]:
    if slices is None:
        return list(range(depth))
    zs = [int(z) for z in slices]
    bad = [z for z in zs if not 0 <= z < depth]
    if bad:
        raise InputError(f"slices {bad[:5]} are outside the stack (0..{depth - 1})")
    return zs


def _net_on(model: TrainedModel, device: Any) -> tuple[Any, bool]:
    """The network on ``device``; channels_last where it pays (``device.channels_last_pays``)
    unless it is being trained (live preview: leave the training network as it is)."""
    import torch

    from ..device import channels_last_pays

    with _MOVING:  # one model may serve several threads (dask chunks): convert it once,
        net = model.net.to(device)  # never while another thread runs it half-converted
        cl = channels_last_pays(device, model.model_cfg.resolved().norm_layer) and not net.training
        if cl:
            net = net.to(memory_format=torch.channels_last)
    return net, cl


_MOVING = threading.Lock()


def _stack_norm(
    model: TrainedModel, net: Any, vol: Volume, cfg: Any, dev: Any, tiles: Any, cl: bool
) -> Any:
    """``net`` with its instance norm frozen to the stack's statistics (``calibrate.py``):
    measured on ``tiles`` when given (dask: the same for every chunk), else on ``vol``."""
    from . import calibrate

    if not calibrate.wanted(cfg, net):
        return net
    tiles = calibrate.stack_tiles(model, vol) if tiles is None else tiles
    amp = "auto" if cfg.amp else False
    return calibrate.calibrated(net, np.asarray(tiles, np.float32), dev, amp, cl)


def predict_stack(
    model: TrainedModel,
    image: Any,
    cfg: Any = None,
    *,
    prob_out: Any = None,
    labels_out: Any = None,
    uncertainty_out: Any = None,
    slices: Sequence[int] | None = None,
    channel_axis: int | None = None,
    stop: StopToken | None = None,
    norm_tiles: Any = None,
) -> Generator[Progress, None, PredictResult]:
    """Segment ``image`` (any array-like, read through ``data.as_volume``) tile by tile.

    ``cfg``: a :class:`~napari_temseg.core.config.model.PredictConfig` (tiling, device, amp,
    threshold - default the model's -, post-processing, output dtype). Outputs are
    array-likes written ``out[z] = (Y, X)``: probability (``prob_out``; float32 / float16
    as is, uint8 scaled 0-255), labels (``prob >= threshold``, post-processed by
    ``min_size``, ``fill_holes``, ``instances``) and, with ``tta``, the variance of the 8
    views (``uncertainty_out``, 0..0.25; uint8 scaled so 255 = 0.25). A model of K >= 3
    classes writes ``prob_out[z] = (K, Y, X)`` (one probability per class, blended like the
    binary one) into a ``(Z, K, Y, X)`` array, and class ids (argmax; ``min_confidence``:
    'unsure' = K below it; ``min_size`` / ``fill_holes`` per class) as labels; its
    uncertainty is the variance of the views averaged over the classes. When *all three* are
    None, numpy arrays ``(Z, Y, X)`` are allocated (probability in ``cfg.prob_dtype``,
    labels uint8, or uint32 for instances, uncertainty float32 with ``cfg.uncertainty``);
    otherwise only the given outputs are written. ``amp``: bf16/fp16 autocast on CUDA and
    bf16 on CPUs with native bf16 (probabilities within ~1e-2 of fp32), else fp32.
    ``cfg.norm_stats`` 'local' (the default) or 'stack': instance-norm layers use statistics
    measured once on calibration tiles of the whole stack (``calibrate.stack_tiles``;
    ``norm_tiles`` to give them), whatever ``slices`` and the tile size; 'local' first evens
    out each slice's illumination over windows twice the training patch
    (``flatfield.py``); 'tile': each tile's own statistics.
    Yields Progress after every batch; returns PredictResult (stopped=True and the
    finished slices when ``stop`` was requested).
    """
    import torch  # noqa: F401 - fail early if torch is missing

    from ..nets.build import min_input_size, required_multiple

    cfg, thr = _check_args(model, cfg)
    full = as_volume(image, channel_axis=channel_axis)
    zs = _slices(slices, full.shape[0])
    outs = SliceWriter(full, prob_out, labels_out, uncertainty_out, cfg, thr, model.classes.k)
    dev = resolve_device(cfg.device)
    was_training = model.net.training
    net, cl = _net_on(model, dev)
    vol = flatfield.prepared(model, net, full, cfg)  # binned, flattened: the network's view
    mc = model.model_cfg
    plan = _Plan(
        vol.shape[2:], cfg.tile, cfg.overlap, required_multiple(mc), cfg.blend, min_input_size(mc)
    )
    net = _stack_norm(model, net, vol, cfg, dev, norm_tiles, cl)
    opts = dict(
        tta=cfg.tta,
        var=outs.arrays[2] is not None,
        amp="auto" if cfg.amp else False,
        cl=cl,
        k=model.classes.k,
    )
    b = model.input_spec.binning
    engine = Engine(
        net.eval(), plan, dev, opts, Unbinned(outs, full.shape[2:], b) if b > 1 else outs
    )
    pin = dev.type == "cuda"
    reader = Worker(
        producer=_pinned(_batches(vol, model.input_spec, plan, zs, cfg.batch), pin), depth=2
    )
    res = PredictResult(*outs.arrays, device=str(dev))
    total, t0 = plan.n * len(zs), time.monotonic()
    try:
        for buf, meta in reader:
            engine.run_batch(buf, meta)
            res.tiles += len(meta)
            el = time.monotonic() - t0
            rate = res.tiles / plan.n * full.shape[2] * full.shape[3] / max(el, 1e-9) / 1e6
            yield Progress(
                stage="predict",
                step=res.tiles,
                total=total,
                elapsed=el,
                rate=rate,
                message=f"slice {meta[-1][0] + 1}/{vol.shape[0]}",
                warning=engine.take_notice(),  # once: the tile batch halved to fit
            )
            if stop is not None and stop.requested:
                res.stopped = True
                break
    except BaseException:
        _cleanup(reader, engine.writer, model.net, was_training, raise_errors=False)
        raise
    _cleanup(reader, engine.writer, model.net, was_training, raise_errors=True)
    res.slices = list(engine.done)
    res.seconds = time.monotonic() - t0
    res.mpix_per_s = len(res.slices) * full.shape[2] * full.shape[3] / max(res.seconds, 1e-9) / 1e6
    return res


def _cleanup(
    reader: Worker, writer: Worker, net: Any, was_training: bool, raise_errors: bool
) -> None:
    """Stop reading, finish writing the finished slices, restore the network's mode."""
    try:
        reader.close(wait=False)
        writer.close(wait=True, raise_errors=raise_errors)
    finally:
        net.train(was_training)


def _pinned(it: Iterator, pin: bool) -> Iterator:
    """Page-locked tensors (CUDA only) so host->device copies can be asynchronous."""
    if not pin:
        yield from it
        return
    import torch

    for buf, meta in it:
        yield torch.from_numpy(buf).pin_memory(), meta


class _One:
    """Receives the probability of one slice (predict_slice)."""

    def __init__(self, shape: tuple):
        self.shape, self.dtype, self.value = shape, np.dtype(np.float32), None

    def __setitem__(self, z: int, v: np.ndarray) -> None:
        self.value = v


def predict_slice(
    model: TrainedModel, image: Any, z: int = 0, cfg: Any = None, *, channel_axis: int | None = None
) -> np.ndarray:
    """Probability ``(Y, X)`` float32 of slice ``z`` (``(K, Y, X)`` for K classes; used by the
    training live preview).

    ``cfg.device`` "auto" runs where the network's weights are; the network's
    train/eval mode is restored afterwards.
    """
    import dataclasses

    from ..config.predict import PredictConfig

    cfg = PredictConfig() if cfg is None else cfg
    if cfg.device == "auto":
        p = next(iter(model.net.parameters()), None)
        cfg = dataclasses.replace(cfg, device=str(p.device) if p is not None else "cpu")
    vol = as_volume(image, channel_axis=channel_axis)
    k = model.classes.k
    sink = _One((vol.shape[0], *(() if k == 2 else (k,)), vol.shape[2], vol.shape[3]))
    run(predict_stack(model, vol, cfg, prob_out=sink, slices=[z]))
    return sink.value


__all__ = ["PredictResult", "predict_stack", "predict_slice", "resolve_device"]
