"""Each slice's illumination evened out before instance norm (inference/flatfield.py)."""

import numpy as np
import pytest

from napari_temseg.core.data.synthetic.fibsem import make_fibsem
from napari_temseg.core.data.synthetic.particles import make_particles
from napari_temseg.core.data.volume import as_volume
from napari_temseg.core.inference.flatfield import FLOOR, Flattened


def _whole(f: Flattened) -> np.ndarray:
    return np.stack([f.region(z) for z in range(f.shape[0])])


def test_any_region_is_the_crop_of_the_whole_slice():
    """The maps depend on the slice only: bands, windows and strided reads (as the
    predictor, the calibration and the per-slice range read them) are crops of one result."""
    img, _ = make_fibsem((2, 2, 200, 168), seed=3, dtype="uint8")
    f = Flattened(as_volume(img, channel_axis=1), 64)
    whole = _whole(f)
    assert whole.shape == (2, 2, 200, 168) and whole.dtype == np.float32
    band = f.region(1, slice(37, 151), slice(5, 99))
    np.testing.assert_array_equal(band, whole[1][:, 37:151, 5:99])
    strided = f.region(0, slice(None, None, 3), slice(1, None, 2))
    np.testing.assert_array_equal(strided, whole[0][:, ::3, 1::2])
    # the slice's own mean and standard deviation per channel are kept
    raw = img.astype(np.float64)
    np.testing.assert_allclose(whole.mean(axis=(2, 3)), raw.mean(axis=(2, 3)), rtol=0.05)


def test_matches_pooling_and_bilinear_interpolation():
    """An independent reference: block means by average pooling, a 3 x 3 box, bilinear
    up-sampling (torch, align_corners=False), the floor on the standard deviation."""
    import torch
    import torch.nn.functional as F

    img = make_particles((192, 256), seed=2)[0].astype(np.float32)
    b = 32
    x = torch.from_numpy(img)[None, None].double()

    def box(t):
        return F.avg_pool2d(F.pad(F.avg_pool2d(t, b), (1, 1, 1, 1), mode="replicate"), 3, 1)

    def up(t):
        return F.interpolate(t, scale_factor=b, mode="bilinear", align_corners=False)

    m, sq = up(box(x)), up(box(x * x))
    M, S = x.mean(), x.std(unbiased=False)
    sd = (sq - m * m).clamp_min((FLOOR * S) ** 2).sqrt()
    ref = ((x - m) / sd * S + M)[0, 0].numpy()
    ours = Flattened(as_volume(img), 2 * b).region(0)[0]
    np.testing.assert_allclose(ours, ref, atol=1e-3 * float(S))


def test_a_smooth_detector_gain_is_evened_out():
    """The same specimen seen with a gain that falls from 1.3 to 0.55 across the slice:
    after flattening it looks like the evenly lit one (mean gap of the standardised images
    0.25 raw, 0.03 flattened)."""
    img = make_particles((256, 384), seed=4)[0].astype(np.float32)
    yy, xx = np.mgrid[0:256, 0:384] / np.array([255.0, 383.0])[:, None, None]
    gain = 1.3 - 0.5 * xx - 0.25 * (yy - 0.5) ** 2
    a = Flattened(as_volume(img), 64).region(0)[0]
    b = Flattened(as_volume(img * gain), 64).region(0)[0]

    def z(v):
        return (v - v.mean()) / v.std()

    raw_gap = np.abs(z(img) - z(img * gain)).mean()
    flat_gap = np.abs(z(a) - z(b)).mean()
    assert raw_gap > 0.2 and flat_gap < 0.2 * raw_gap, (raw_gap, flat_gap)


def test_flat_and_broken_slices_stay_finite():
    flat = np.full((2, 70, 90), 17, np.uint16)
    out = _whole(Flattened(as_volume(flat), 32))
    np.testing.assert_allclose(out, 17.0)
    img = make_particles((64, 64), seed=1)[0].astype(np.float32)
    img[10:20, 10:20] = np.nan
    out = Flattened(as_volume(img), 32).region(0)
    assert np.isfinite(out).all()


def test_tiny_and_large_windows():
    """A slice smaller than one block gets one map value (the slice's own statistics:
    standardisation changes nothing); a window of 1 px still works."""
    img = make_particles((40, 50), seed=3)[0].astype(np.float32)
    big = Flattened(as_volume(img), 512).region(0)[0]
    np.testing.assert_allclose(big, img, atol=1e-3 * img.std())
    assert np.isfinite(Flattened(as_volume(img), 1).region(0)).all()


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_only_local_instance_norm_predictions_are_flattened(norm):
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.flatfield import prepared
    from napari_temseg.core.nets.build import build_model

    net = build_model(ModelConfig(arch="small-unet", norm_layer=norm))
    vol = as_volume(np.zeros((64, 64), np.uint8))
    for stats in ("local", "stack", "tile"):
        out = prepared(None, net, vol, PredictConfig(norm_stats=stats))
        assert isinstance(out, Flattened) == (stats == "local" and norm == "instance")
