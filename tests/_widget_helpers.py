"""Shared helpers for the dock tests (tiny synthetic data, notification capture)."""

from __future__ import annotations

import contextlib

import numpy as np


def blobs(shape=(4, 64, 64), seed=0, channels=None):
    """A small stack of bright discs on a noisy background and its ground-truth mask.

    Returns (image float32 (Z, Y, X) or (Z, C, Y, X) when ``channels``), mask uint8 (Z, Y, X).
    """
    rng = np.random.default_rng(seed)
    z, y, x = shape
    yy, xx = np.mgrid[:y, :x]
    mask = np.zeros(shape, np.uint8)
    for k in range(z):
        for _ in range(3):
            cy, cx, r = rng.integers(10, y - 10), rng.integers(10, x - 10), rng.integers(5, 9)
            mask[k][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    img = mask.astype(np.float32) * 0.6 + 0.2 + rng.normal(0, 0.05, shape).astype(np.float32)
    if channels:
        img = np.stack([img * (1 + 0.1 * c) for c in range(channels)], axis=1)
    return img, mask


def gui_marks() -> list:
    """pytestmark of the dock tests: GUI, and docks opened the way napari does (npe2 +
    PublicOnlyProxy viewer) - a private napari API use fails the test."""
    import pytest

    return [
        pytest.mark.gui,
        pytest.mark.filterwarnings("error:Private attribute access:FutureWarning"),
    ]


def wait_job(qtbot, dock, timeout: int = 180_000) -> None:
    """Until the dock's background job (a started worker) has finished."""
    qtbot.waitUntil(lambda: dock.job is not None and not dock.job.running, timeout=timeout)


def run_predict(qtbot, dock, images, tile=None) -> None:
    """Predict ``images`` (layers) in the Predict dock on the CPU and wait for the end."""
    dock.reset_choices()
    dock.images.value = list(images)
    dock.device.value = "cpu"
    if tile is not None:
        dock.tile.value = tile
    dock.run_btn.clicked()
    wait_job(qtbot, dock)


def errors_since(start: int) -> list[str]:
    """Messages of napari error notifications emitted after record ``start``."""
    from napari.utils.notifications import notification_manager

    return [
        str(n.message)
        for n in notification_manager.records[start:]
        if str(getattr(n.type, "value", n.type)).lower() == "error"
    ]


def n_records() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


def one_torch_thread():
    """Tests train with ONE torch thread: on this shared 2-core machine two OpenMP threads
    under load were 10-20x slower per step (spin-waiting), which made timings meaningless."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


def set_train_form(w, *, image_layers, mask_layer, seconds=None, epochs=2, patch=64, width=8):
    """Fill the Train dock for a tiny, fast CPU run (None: the 'no limit' setting)."""
    w.reset_choices()
    w.images.value = list(image_layers)
    w.mask.value = mask_layer
    w.arch.value = "small-unet"
    w.base_width.value = width
    w.patch.value = patch
    w.batch.value = 4
    w.form.set_value("seconds", seconds)
    w.form.set_value("epochs", epochs)
    w.augment.value = "flips"
    w.device.value = "cpu"


def tiny_model(channels=1, context=0):
    """An untrained small model (for input-check tests that never need a good prediction)."""
    from napari_temseg.core.config.model import InputSpec, ModelConfig
    from napari_temseg.core.modelfile.format import TrainedModel
    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="small-unet", base_width=4, in_channels=channels * (2 * context + 1))
    spec = InputSpec(
        channels=channels, context=context, norm_lo=(0.0,) * channels, norm_hi=(1.0,) * channels
    )
    return TrainedModel(net=build_model(cfg).eval(), model_cfg=cfg, input_spec=spec)


@contextlib.contextmanager
def plugin_docks(make_viewer, names):
    """(viewer, dock, ...) opened the way napari does (npe2), with ONE torch thread; running
    jobs are stopped and the thread count restored afterwards."""
    threads = one_torch_thread()
    viewer = make_viewer()
    ws = [viewer.window.add_plugin_dock_widget("napari-temseg", n)[1] for n in names]
    try:
        yield (viewer, *ws)
    finally:
        for w in ws:
            job = getattr(w, "job", None)
            if job is not None and job.running:
                job.stop()
        import torch

        torch.set_num_threads(threads)
