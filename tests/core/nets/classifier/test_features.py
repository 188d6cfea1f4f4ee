"""The filter bank: ilastik's filters, right values, a bounded halo, any shape."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_temseg.core.nets.classifier import features as F  # noqa: E402


def _smooth_noise(shape, seed=0):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.standard_normal(shape), 2).astype(np.float32)


def _bank(img):
    return F.filter_bank(torch.from_numpy(img)[None, None])[0].numpy()


def test_one_name_per_feature_for_every_channel():
    x = torch.zeros(2, 3, 40, 50)
    out = F.filter_bank(x)
    assert out.shape == (2, F.feature_count(3), 40, 50)
    names = F.feature_names(3)
    assert len(names) == len(set(names)) == F.feature_count(3) == 3 * (1 + 8 * len(F.SCALES))


@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.6])
def test_full_resolution_filters_match_scipy(sigma):
    from scipy import ndimage as ndi

    img = _smooth_noise((128, 128))
    out, names = _bank(img), F.feature_names(1)
    inner = (slice(40, -40),) * 2
    ref = img.astype(np.float64)
    pairs = {
        "gauss": ndi.gaussian_filter(ref, sigma),
        "gradmag": ndi.gaussian_gradient_magnitude(ref, sigma),
        "log": ndi.gaussian_laplace(ref, sigma),
    }
    for name, want in pairs.items():
        got = out[names.index(f"c0:{name}@{sigma:g}")]
        err = np.abs(got - want)[inner].max() / np.abs(want[inner]).max()
        assert err < 0.05, (name, err)


@pytest.mark.parametrize("sigma", [3.5, 5.0, 10.0])
def test_pooled_scales_follow_the_full_resolution_filter(sigma):
    from scipy import ndimage as ndi

    img = _smooth_noise((256, 256), seed=1)
    out, names = _bank(img), F.feature_names(1)
    inner = (slice(70, -70),) * 2
    for name, want in (
        ("gauss", ndi.gaussian_filter(img.astype(np.float64), sigma)),
        ("log", ndi.gaussian_laplace(img.astype(np.float64), sigma)),
    ):
        got = out[names.index(f"c0:{name}@{sigma:g}")][inner].ravel()
        assert np.corrcoef(got, want[inner].ravel())[0, 1] > 0.99, name


def test_derivatives_are_exact_on_a_ramp_and_a_paraboloid():
    y, x = np.mgrid[0:96, 0:96].astype(np.float32)
    names = F.feature_names(1)
    ramp = _bank(0.5 * x)
    para = _bank(0.5 * (x - 48) ** 2 / 48)  # curvature 1/48 along x
    c = (slice(40, 56),) * 2
    for s in (0.7, 1.6):
        assert np.allclose(ramp[names.index(f"c0:gradmag@{s:g}")][c], 0.5, atol=1e-3)
        assert np.allclose(para[names.index(f"c0:log@{s:g}")][c], 1 / 48, rtol=0.02)
        assert np.allclose(para[names.index(f"c0:hess_max@{s:g}")][c], 1 / 48, rtol=0.02)
        assert np.allclose(para[names.index(f"c0:hess_min@{s:g}")][c], 0, atol=1e-4)


def test_a_pixel_sees_nothing_beyond_the_halo():
    """What tiling and training crops rely on: the image outside halo() px of a pixel
    does not change its features."""
    img = _smooth_noise((320, 320), seed=2)
    g = F.halo()
    c = 160
    box = (slice(c - g, c + g + 1),) * 2
    changed = img.copy()
    keep = np.zeros_like(img, bool)
    keep[box] = True
    changed[~keep] = 5.0
    a = _bank(img)[:, c, c]
    b = _bank(changed)[:, c, c]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(7, 9), (33, 17), (130, 61)])
def test_any_tile_shape_gives_features_of_that_shape(shape):
    out = F.filter_bank(torch.rand(1, 1, *shape))
    assert out.shape[-2:] == shape
    assert torch.isfinite(out).all()
