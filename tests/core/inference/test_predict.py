import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from napari_temseg.core.config.choices import ConfigError
from napari_temseg.core.config.model import InputSpec, ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.errors import InputError
from napari_temseg.core.inference.predict import predict_slice, predict_stack
from napari_temseg.core.modelfile.format import TrainedModel
from napari_temseg.core.progress import StopToken, run


class Pick(nn.Module):
    """Outputs input channel ``c`` as the logit: an exact identity predictor."""

    def __init__(self, c: int = 0):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x[:, self.c : self.c + 1]


def _model(net, channels=1, context=0, threshold=0.5, arch="small-unet"):
    spec = InputSpec(
        channels=channels, context=context, norm_lo=(0.0,) * channels, norm_hi=(1.0,) * channels
    )
    cfg = ModelConfig(arch=arch, in_channels=spec.network_channels, base_width=4)
    return TrainedModel(net=net, model_cfg=cfg, input_spec=spec, threshold=threshold)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


_CALL_ARGS = {"prob_out", "labels_out", "uncertainty_out", "slices", "channel_axis", "stop"}


def _cfg(**kw):
    kw.setdefault("device", "cpu")
    kw.setdefault("amp", False)  # exact comparisons: fp32
    return PredictConfig(**kw)


def _run(model, image, **kw):
    """predict_stack with the PredictConfig fields of ``kw`` and the call's own arguments."""
    call = {k: kw.pop(k) for k in list(kw) if k in _CALL_ARGS}
    return run(predict_stack(model, image, _cfg(**kw), **call))


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize(
    "shape,tile,overlap", [((2, 37, 101), 32, 0.3), ((1, 83, 67), 48, 0.5), ((3, 17, 200), 64, 0.0)]
)
def test_identity_predictor_reconstructs_input(blend, shape, tile, overlap):
    img = np.random.default_rng(0).normal(0, 2, shape).astype(np.float32)
    res = _run(_model(Pick()), img, tile=tile, overlap=overlap, blend=blend, batch=3)
    assert res.prob.shape == shape and res.prob.dtype == np.float32
    np.testing.assert_allclose(res.prob, sigmoid(img), atol=1e-6)
    logit = np.log(res.prob / (1 - res.prob))  # invert the mapping: the logits themselves
    np.testing.assert_allclose(logit, img, atol=1e-4)
    np.testing.assert_array_equal(res.labels, (img >= 0).astype(np.uint8))
    assert res.slices == list(range(shape[0])) and not res.stopped


@pytest.mark.parametrize(
    "pick,slice_of",
    [
        (2, lambda z, Z: z),
        (0, lambda z, Z: abs(z - 1) if z else 1),
        (5, lambda z, Z: z + 1 if z + 1 < Z else 2 * Z - z - 3),
    ],
)
def test_two_channels_context_order_and_reflection(pick, slice_of):
    """C=2, k=1: network channel (dz + k) * C + c; the edges reflect (no repeat)."""
    img = np.random.default_rng(1).normal(size=(4, 2, 21, 30)).astype(np.float32)
    res = _run(_model(Pick(pick), channels=2, context=1), img, tile=16, overlap=0.25)
    c = pick % 2
    for z in range(4):
        np.testing.assert_allclose(res.prob[z], sigmoid(img[slice_of(z, 4), c]), atol=1e-6)


def test_channel_last_input_and_normalisation():
    img = np.random.default_rng(2).integers(0, 1000, (3, 20, 24, 2)).astype(np.uint16)  # Z, Y, X, C
    spec = InputSpec(channels=2, norm_lo=(100.0, 0.0), norm_hi=(900.0, 1000.0))
    m = TrainedModel(net=Pick(1), model_cfg=ModelConfig(in_channels=2), input_spec=spec)
    res = _run(m, img, tile=16)
    np.testing.assert_allclose(res.prob, sigmoid(img[..., 1] / 1000.0), atol=1e-6)


def _pointwise_net(cin=1):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(cin, 8, 1), nn.Tanh(), nn.Conv2d(8, 1, 1)).eval()


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_tiled_equals_untiled_for_pointwise_net(blend):
    net = _pointwise_net()
    img = np.random.default_rng(3).random((2, 70, 93)).astype(np.float32)
    tiled = _run(_model(net), img, tile=32, overlap=0.25, blend=blend)
    with torch.no_grad():
        direct = torch.sigmoid(net(torch.from_numpy(img[:, None]))).numpy()[:, 0]
    np.testing.assert_allclose(tiled.prob, direct, atol=1e-5)


@pytest.mark.parametrize("shape,channels,context", [((37, 45), 1, 0), ((3, 2, 29, 50), 2, 1)])
def test_single_tile_equals_full_image_forward_small_unet(shape, channels, context):
    """Image fits in one tile: same as padding (reflect) to the stride and one forward pass
    (with the tile's own instance-norm statistics, as that forward pass has)."""
    from _core_helpers import pad_to_multiple

    from napari_temseg.core.data.volume import as_volume, network_input
    from napari_temseg.core.nets.build import build_model, required_multiple

    m = _model(None, channels=channels, context=context)
    torch.manual_seed(0)
    m.net = build_model(m.model_cfg).eval()
    img = np.random.default_rng(4).random(shape).astype(np.float32)
    res = _run(m, img, tile=64, norm_stats="tile")
    vol = as_volume(img)
    for z in range(vol.shape[0]):
        x, (h, w) = pad_to_multiple(
            network_input(vol, z, m.input_spec), required_multiple(m.model_cfg)
        )
        with torch.no_grad():
            ref = torch.sigmoid(m.net(torch.from_numpy(x[None])))[0, 0, :h, :w].numpy()
        np.testing.assert_allclose(res.prob[z], ref, atol=1e-4)


def test_bf16_autocast_on_cpu_is_close_to_fp32_and_leaves_the_net_fp32(monkeypatch):
    from napari_temseg.core import device
    from napari_temseg.core.nets.build import build_model

    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)  # amp=True: bf16 where native

    m = _model(None)
    torch.manual_seed(0)
    m.net = build_model(m.model_cfg).eval()
    img = np.random.default_rng(14).random((2, 48, 64)).astype(np.float32)
    fp32 = _run(m, img, tile=32)
    bf16 = _run(m, img, tile=32, amp=True)
    diff = np.abs(bf16.prob - fp32.prob)
    assert 0 < diff.max() < 0.05 and diff.mean() < 5e-3
    assert all(p.dtype == torch.float32 for p in m.net.parameters())


def test_image_smaller_than_tile_2d_and_flat_outputs():
    img = np.random.default_rng(5).normal(size=(5, 7)).astype(np.float32)
    prob = np.zeros((5, 7), np.float32)
    res = _run(_model(Pick()), img, prob_out=prob, tile=512)
    assert res.labels is None and res.prob is prob and res.tiles == 1
    np.testing.assert_allclose(prob, sigmoid(img), atol=1e-6)


def _d4_net():
    """A conv net whose kernels are symmetric under flips and 90-degree rotations."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 5, padding=2))
    with torch.no_grad():
        for conv in (net[0], net[2]):
            w = conv.weight
            sym = sum(torch.rot90(w, k, (2, 3)) for k in range(4))
            conv.weight.copy_(sym + sym.flip(3))
    return net.eval()


def test_tta_with_equivariant_net_equals_plain_and_uncertainty_is_zero():
    img = np.random.default_rng(6).random((2, 40, 56)).astype(np.float32)
    m = _model(_d4_net())
    plain = _run(m, img, tile=32, overlap=0.25)
    tta = _run(m, img, tile=32, overlap=0.25, tta=True, uncertainty=True)
    np.testing.assert_allclose(tta.prob, plain.prob, atol=1e-5)
    assert tta.uncertainty.shape == img.shape and tta.uncertainty.max() < 1e-6


def test_tta_uncertainty_positive_for_asymmetric_net():
    torch.manual_seed(2)
    net = nn.Conv2d(1, 1, 5, padding=2).eval()
    img = np.random.default_rng(7).random((1, 32, 32)).astype(np.float32) * 4
    unc = np.zeros((1, 32, 32), np.uint8)
    prob = np.zeros((1, 32, 32), np.float32)
    res = _run(_model(net), img, tile=32, tta=True, prob_out=prob, uncertainty_out=unc)
    assert res.uncertainty is unc and unc.max() > 0
    with pytest.raises(InputError, match="tta=True"):
        _run(_model(net), img, uncertainty_out=np.zeros((1, 32, 32), np.float32))


def test_uint8_and_float16_probabilities():
    img = np.random.default_rng(8).normal(0, 2, (2, 30, 40)).astype(np.float32)
    m = _model(Pick())
    ref = _run(m, img, tile=16).prob
    u8 = _run(m, img, tile=16, prob_dtype="uint8").prob
    f16 = _run(m, img, tile=16, prob_dtype="float16").prob
    assert u8.dtype == np.uint8 and f16.dtype == np.float16
    assert np.abs(u8.astype(int) - np.rint(ref * 255).astype(int)).max() <= 1
    np.testing.assert_allclose(f16.astype(np.float32), ref, atol=1e-3)
    with pytest.raises(ConfigError, match="prob_dtype must be one of"):
        _run(m, img, prob_dtype="int16")


def _blobs():
    """Logits: +6 inside a 12x12 square with a 4x4 hole and a 2x2 speck, -6 elsewhere."""
    z = np.full((2, 40, 40), -6.0, np.float32)
    z[:, 5:17, 5:17] = 6.0
    z[:, 9:13, 9:13] = -6.0
    z[:, 30:32, 30:32] = 6.0
    z[1, 25:35, 2:8] = 6.0
    return z


def test_postprocessing_min_size_fill_holes_instances():
    img, m = _blobs(), _model(Pick())
    raw = _run(m, img, tile=32).labels
    assert raw[0, 10, 10] == 0 and raw[0, 30, 30] == 1
    clean = _run(m, img, tile=32, min_size=10, fill_holes=True).labels
    assert clean[0, 10, 10] == 1 and clean[0, 30, 30] == 0 and clean[0, 5:17, 5:17].all()
    inst = _run(m, img, tile=32, instances=True).labels
    assert inst.dtype == np.uint32
    ids0, ids1 = set(np.unique(inst[0])) - {0}, set(np.unique(inst[1])) - {0}
    assert len(ids0) == 2 and len(ids1) == 3 and not ids0 & ids1  # unique across slices


def test_threshold_option():
    img = np.random.default_rng(9).normal(size=(1, 20, 20)).astype(np.float32)
    res = _run(_model(Pick(), threshold=0.8), img, tile=16)
    np.testing.assert_array_equal(res.labels[0], sigmoid(img[0]) >= 0.8)
    res = _run(_model(Pick()), img, tile=16, threshold=0.3)
    np.testing.assert_array_equal(res.labels[0], sigmoid(img[0]) >= 0.3)


def test_progress_and_stop_returns_finished_slices():
    img = np.random.default_rng(10).normal(size=(6, 40, 40)).astype(np.float32)
    stop = StopToken()
    m = _model(Pick(), arch="unet")  # batch norm: 16-px tiles (instance norm needs 32)
    gen = predict_stack(m, img, _cfg(tile=16, overlap=0.25, batch=2), stop=stop)
    seen = []
    try:
        while True:
            p = next(gen)
            seen.append(p)
            if p.step >= 20:
                stop.request()
    except StopIteration as e:
        res = e.value
    assert res.stopped and 0 < len(res.slices) < 6
    assert all(p.stage == "predict" and p.total == 6 * 9 for p in seen)
    assert [p.step for p in seen] == sorted(p.step for p in seen) and seen[0].rate > 0
    for z in res.slices:
        np.testing.assert_allclose(res.prob[z], sigmoid(img[z]), atol=1e-6)
    assert not res.prob[5].any()


def test_generator_close_stops_threads():
    before = threading.active_count()
    img = np.random.default_rng(11).normal(size=(8, 40, 40)).astype(np.float32)
    gen = predict_stack(_model(Pick()), img, _cfg(tile=16, batch=1))
    next(gen)
    gen.close()
    assert threading.active_count() == before


def test_predict_slice_restores_train_mode():
    net = _pointwise_net().train()
    img = np.random.default_rng(12).random((3, 30, 30)).astype(np.float32)
    p = predict_slice(_model(net), img, 1, _cfg(tile=16))
    assert p.shape == (30, 30) and p.dtype == np.float32 and net.training
    full = _run(_model(net), img, tile=16).prob
    np.testing.assert_allclose(p, full[1], atol=1e-6)


def test_input_errors():
    img = np.zeros((2, 2, 20, 20), np.float32)
    with pytest.raises(InputError, match="channel"):
        _run(_model(Pick()), img)
    with pytest.raises(InputError, match="must be"):
        _run(_model(Pick(), channels=2), img, prob_out=np.zeros((2, 20, 21), np.float32))
    with pytest.raises(InputError, match="outside the stack"):
        _run(_model(Pick(), channels=2), img, slices=[5])
    with pytest.raises(InputError, match="TrainedModel"):
        _run(Pick(), img)


def _anon_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def test_memmap_stack_to_memmap_and_zarr_does_not_load_stack(tmp_path):
    """A 200 MB memmap stack streams into TIFF + zarr outputs with a few MB of memory."""
    import tracemalloc

    from napari_temseg.core import data as io

    Z, Y, X = 100, 512, 512  # float64: 200 MB on disk, few pixels (fast on a CPU)
    src = np.lib.format.open_memmap(
        tmp_path / "stack.npy", mode="w+", dtype=np.float64, shape=(Z, Y, X)
    )
    ramp = np.linspace(-3, 3, X)
    for z in range(Z):
        src[z] = ramp[None, :] + (z - Z / 2) / Z
    src.flush()
    del src
    stack = io.read_image(tmp_path / "stack.npy")
    prob = io.create_output(tmp_path / "p.tif", (Z, Y, X), np.float16)
    labels = io.create_output(tmp_path / "l.zarr", (Z, Y, X), np.uint8)
    _run(_model(Pick()), stack[:2], tile=256)  # warm up: imports allocate memory too
    peak_anon, stop = [_anon_kb()], threading.Event()

    def sample():
        while not stop.is_set():
            peak_anon.append(_anon_kb())
            stop.wait(0.01)

    t = threading.Thread(target=sample)
    base = peak_anon[0]
    tracemalloc.start()
    t.start()
    try:
        res = _run(
            _model(Pick()), stack, prob_out=prob, labels_out=labels, tile=256, overlap=0.25, batch=4
        )
    finally:
        stop.set()
        t.join()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    stack_mb = stack.nbytes / 2**20
    assert stack_mb >= 195
    assert peak / 2**20 < 0.15 * stack_mb, f"numpy peak {peak / 2**20:.0f} MB"
    assert (max(peak_anon) - base) / 1024 < 0.25 * stack_mb, (
        f"anon RSS +{(max(peak_anon) - base) / 1024:.0f} MB"
    )
    assert res.slices == list(range(Z))
    z = 17
    expect = sigmoid(ramp + (z - Z / 2) / Z)
    np.testing.assert_allclose(np.asarray(prob[z, 100], np.float32), expect, atol=1e-3)
    np.testing.assert_array_equal(labels[z, 5], (expect >= 0.5).astype(np.uint8))


def test_predict_dask_local_cluster_matches_predict_stack(tmp_path):
    import dask.array as da
    from distributed import Client, LocalCluster

    from napari_temseg.core.inference import distributed as pdm
    from napari_temseg.core.modelfile.format import save_model
    from napari_temseg.core.nets.build import build_model

    m = _model(None, channels=2, context=1)
    torch.manual_seed(0)
    m.net = build_model(m.model_cfg).eval()
    save_model(m, tmp_path / "m.safetensors")
    img = np.random.default_rng(13).random((5, 2, 40, 50)).astype(np.float32)
    ref = _run(m, img, tile=32)
    loads = pdm.LOADS["count"]
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        res = pdm.predict_dask(
            tmp_path / "m.safetensors",
            da.from_array(img, chunks=(2, 2, 40, 50)),
            tmp_path / "p.zarr",
            _cfg(tile=32),
            labels_zarr_path=tmp_path / "l.zarr",
        )
    assert pdm.LOADS["count"] - loads == 1  # 3 chunks, one model load in the worker
    np.testing.assert_allclose(res.prob[:], ref.prob, atol=1e-6)
    np.testing.assert_array_equal(res.labels[:], ref.labels)
    with pytest.raises(InputError, match="--overwrite"):
        pdm.predict_dask(tmp_path / "m.safetensors", img, tmp_path / "p.zarr")


class _FailFastSlowRest:
    """A (Z, Y, X) array-like: reading slice 0 fails at once, every other slice takes 1 s."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim

    def __getitem__(self, idx):
        if idx[0].start == 0:
            raise OSError("disk read failed")
        time.sleep(1.0)
        return self.data[idx]


@pytest.mark.parametrize("cluster", [False, True])
def test_predict_dask_failure_leaves_no_late_writes(tmp_path, cluster):
    """When one chunk fails, predict_dask raises only after the chunks still running have
    ended, so removing the outputs then (as `temseg predict` does) is final: no worker
    writes a chunk into a store that was just removed."""
    import contextlib

    import dask.array as da
    from distributed import Client, LocalCluster

    from napari_temseg.core.data.write import remove_output
    from napari_temseg.core.inference import distributed as pdm

    m = _model(Pick())
    img = np.random.default_rng(16).random((2, 20, 20)).astype(np.float32)
    arr = da.from_array(_FailFastSlowRest(img), chunks=(1, 20, 20))
    with contextlib.ExitStack() as stack:
        if cluster:
            lc = stack.enter_context(
                LocalCluster(
                    n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
                )
            )
            stack.enter_context(Client(lc))
        t0 = time.monotonic()
        with pytest.raises(OSError, match="disk read failed"):
            pdm.predict_dask(m, arr, tmp_path / "p.zarr", _cfg(tile=16))
        assert time.monotonic() - t0 >= 0.9  # waited for the slow chunk
        remove_output(tmp_path / "p.zarr")
        time.sleep(1.5)  # a late write would land now
    assert not (tmp_path / "p.zarr").exists()


class _Broken:
    """An array-like that fails on slice 2 (reading or writing)."""

    def __init__(self, shape, dtype=np.float32):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.data = np.zeros(shape, dtype)

    def __getitem__(self, idx):
        if idx[0] == 2:
            raise OSError("disk read failed")
        return self.data[idx]

    def __setitem__(self, z, v):
        if z == 2:
            raise OSError("disk full")
        self.data[z] = v


@pytest.mark.parametrize("where", ["read", "write"])
def test_errors_in_the_reader_or_writer_thread_reach_the_caller(where):
    before = threading.active_count()
    img = np.random.default_rng(15).normal(size=(5, 20, 20)).astype(np.float32)
    if where == "read":
        src, out = _Broken(img.shape), np.zeros(img.shape, np.float32)
        src.data[:] = img
    else:
        src, out = img, _Broken(img.shape)
    with pytest.raises(OSError, match="disk"):
        _run(_model(Pick()), src, prob_out=out, tile=16, batch=1)
    assert threading.active_count() == before


@pytest.mark.parametrize("size", [12, 16, 1])
def test_tiny_images_with_the_default_instance_norm_model(size):
    """Instance norm needs > 1 px at the 1/16 bottleneck: tiny images are reflect-padded to
    two strides (32 px) and cropped back, the same as padding by hand."""
    from napari_temseg.core.config.model import DEFAULT_MODEL
    from napari_temseg.core.inference.tiling import pad_to
    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch=DEFAULT_MODEL.arch, in_channels=1)
    assert cfg.resolved().norm_layer == "instance"  # "auto" of a binary small-unet
    torch.manual_seed(0)
    m = TrainedModel(build_model(cfg).eval(), cfg, InputSpec())
    img = np.random.default_rng(20).random((size, size + 3)).astype(np.float32)
    res = _run(m, img, tile=16)
    assert res.prob.shape == (1, size, size + 3) and np.isfinite(res.prob).all()
    x = pad_to(img[None, None], (32, 32))
    with torch.no_grad():
        ref = torch.sigmoid(m.net(torch.from_numpy(np.ascontiguousarray(x))))[0, 0]
    np.testing.assert_allclose(res.prob[0], ref[:size, : size + 3].numpy(), atol=1e-4)


def test_tile_16_with_instance_norm_uses_32_px_tiles():
    """A 16-px tile leaves instance norm one pixel at the bottleneck: a raw torch error for a
    batch of one tile, silently degenerate output (x - mean = 0) for larger batches."""
    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(in_channels=1, base_width=4, norm_layer="instance")
    torch.manual_seed(0)
    m = TrainedModel(build_model(cfg).eval(), cfg, InputSpec())
    img = np.random.default_rng(21).random((70, 90)).astype(np.float32)
    small = _run(m, img, tile=16, overlap=0.25, batch=1)
    assert small.tiles == _run(m, img, tile=32, overlap=0.25).tiles
    np.testing.assert_allclose(
        small.prob, _run(m, img, tile=32, overlap=0.25, batch=3).prob, atol=1e-5
    )
