"""Batched augmentation: label safety, exact dihedral ops, image/label alignment, seeds."""

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from napari_temseg.core.config.choices import AUGMENT_PRESETS, ConfigError  # noqa: E402
from napari_temseg.core.errors import InputError  # noqa: E402
from napari_temseg.core.training.augment.augmenter import PRESETS, Augmenter  # noqa: E402
from napari_temseg.core.training.augment.kernels import AugmentOps  # noqa: E402

GEOMETRY_ONLY = dict(
    p_brightness=0.0, p_contrast=0.0, p_gamma=0.0, p_curtain=0.0, p_blur=0.0, p_noise=0.0
)


def _batch(n=4, c=2, p=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, p, p, generator=g)
    y = (torch.rand(n, 1, p, p, generator=g) > 0.5).float()
    w = (torch.rand(n, 1, p, p, generator=g) > 0.2).float()
    return x, y, w


def _blobs(n=8, p=64, seed=0):
    """Smooth random blobs: mask = field > 0; image = bright blobs + mild noise."""
    g = torch.Generator().manual_seed(seed)
    field = F.interpolate(
        torch.randn(n, 1, 6, 6, generator=g), size=(p, p), mode="bicubic", align_corners=True
    )
    y = (field > 0).float()
    x = 0.2 + 0.6 * y + 0.05 * torch.randn(n, 1, p, p, generator=g)
    return x, y, torch.ones_like(y)


def _dihedral(a):
    """The 8 exact flips/rotations of (..., H, W)."""
    out = []
    for k in range(4):
        r = torch.rot90(a, k, dims=(-2, -1))
        out += [r, r.flip(-1)]
    return out


def test_presets_match_config():
    assert tuple(PRESETS) == AUGMENT_PRESETS
    with pytest.raises(ConfigError, match="augmentor"):
        Augmenter("heavy")
    with pytest.raises(ConfigError, match="p_rotate"):
        Augmenter("default", p_rotatee=1.0)
    with pytest.raises(ConfigError, match="probability"):
        AugmentOps(p_noise=1.5)


def test_bad_shapes_raise_input_error():
    x, y, w = _batch()
    with pytest.raises(InputError, match="N, C, H, W"):
        Augmenter()(x[0], y, w)
    with pytest.raises(InputError, match="w as"):
        Augmenter()(x, y, w[:, :, :16])
    with pytest.raises(InputError, match="float"):
        Augmenter()((x * 255).to(torch.uint8), y, w)


@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
def test_shapes_dtypes_device_and_label_values(preset):
    x, y, w = _batch(n=6, c=3, p=48)
    y8, wb = y.to(torch.uint8), w.bool()
    xo, yo, wo = Augmenter(preset, seed=1)(x, y8, wb)
    assert xo.shape == x.shape and yo.shape == y.shape and wo.shape == w.shape
    assert (xo.dtype, yo.dtype, wo.dtype) == (torch.float32, torch.uint8, torch.bool)
    assert xo.device == x.device and torch.isfinite(xo).all()
    assert set(yo.unique().tolist()) <= {0, 1}
    xo, yo, wo = Augmenter(preset, seed=1)(x, y, w)  # float labels
    assert set(yo.unique().tolist()) <= {0.0, 1.0} and set(wo.unique().tolist()) <= {0.0, 1.0}


def test_inputs_are_not_modified():
    x, y, w = _batch()
    copies = [a.clone() for a in (x, y, w)]
    for preset in ("flips", "default", "strong"):
        Augmenter(preset)(x, y, w)
    assert all(torch.equal(a, b) for a, b in zip((x, y, w), copies, strict=False))


def test_none_is_identity():
    x, y, w = _batch()
    xo, yo, wo = Augmenter("none")(x, y, w)
    assert torch.equal(xo, x) and torch.equal(yo, y) and torch.equal(wo, w)


def test_flips_and_rot90_are_exact_and_shared_by_image_and_labels():
    n, p = 32, 16
    x = torch.arange(n * p * p, dtype=torch.float32).view(n, 1, p, p)  # every pixel unique
    y = torch.zeros(n, 1, p, p)
    y[:, :, 3, 11] = 1  # an off-centre marker
    xo, yo, wo = Augmenter("flips", seed=4)(x, y, torch.ones_like(y))
    used = set()
    for i in range(n):
        hits = [j for j, d in enumerate(_dihedral(x[i])) if torch.equal(d, xo[i])]
        assert len(hits) == 1, f"sample {i} is not an exact flip/rotation"
        assert torch.equal(_dihedral(y[i])[hits[0]], yo[i])  # marker moved with the image
        used.add(hits[0])
    assert torch.equal(wo, torch.ones_like(y))
    assert len(used) >= 5  # different draws per sample (8 equally likely outcomes)


@pytest.mark.parametrize("preset", ["augmentor", "strong"])
def test_geometry_moves_image_and_mask_together(preset):
    x, y, w = _blobs()
    xo, yo, wo = Augmenter(preset, seed=2, **GEOMETRY_ONLY)(x, y, w)
    valid = wo > 0
    changed = [(yo[i] != y[i]).float().mean().item() > 0.01 for i in range(len(y))]
    assert sum(changed) >= len(y) // 2  # the masks really moved
    pred = (xo > 0.5)[valid]
    truth = (yo > 0)[valid]
    dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert dice > 0.98, float(dice)
    assert valid.float().mean() > 0.5


def test_geometry_alignment_would_catch_a_mismatch():
    """The alignment check above is able to fail: labels of another draw do not match."""
    x, y, w = _blobs()
    xo, _, _ = Augmenter("strong", seed=2, **GEOMETRY_ONLY)(x, y, w)
    _, yo, wo = Augmenter("strong", seed=3, **GEOMETRY_ONLY)(x, y, w)
    valid = wo > 0
    pred, truth = (xo > 0.5)[valid], (yo > 0)[valid]
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) < 0.85


def test_same_seed_same_result_and_new_draws_each_call():
    x, y, w = _batch(n=8)
    a, b = Augmenter("strong", seed=7), Augmenter("strong", seed=7)
    out_a, out_b = a(x, y, w), b(x, y, w)
    assert all(torch.equal(u, v) for u, v in zip(out_a, out_b, strict=False))
    again = a(x, y, w)
    assert not torch.equal(again[0], out_a[0])
    other = Augmenter("strong", seed=8)(x, y, w)
    assert not torch.equal(other[0], out_a[0])


def test_different_parameters_per_sample():
    x, y, w = _blobs(n=1)
    x, y, w = (a.expand(6, -1, -1, -1).contiguous() for a in (x, y, w))
    xo, yo, _ = Augmenter(
        "none", p_rotate=1.0, rotate_deg=30, p_elastic=1.0, p_brightness=1.0, brightness=0.2
    )(x, y, w)
    for i in range(6):
        for j in range(i + 1, 6):
            assert not torch.equal(xo[i], xo[j]) and not torch.equal(yo[i], yo[j])


def test_outside_pixels_get_zero_weight():
    x, y, w = _blobs(n=8, p=64)
    y = torch.ones_like(y)
    # zoom out by 2: only the central 32 x 32 comes from inside the patch
    _, yo, wo = Augmenter("none", p_zoom=1.0, zoom=(0.5, 0.5))(x, y, w)
    inside = torch.zeros_like(wo)
    inside[..., 16:48, 16:48] = 1
    assert (wo != inside).float().mean() < 0.01
    assert torch.equal(yo * (1 - wo), torch.zeros_like(yo))  # labels outside are 0 too
    # rotation: corners come from outside, the centre never does
    _, _, wo = Augmenter("none", p_rotate=1.0, rotate_deg=45)(x, y, w)
    assert (wo[..., 24:40, 24:40] == 1).all()
    corners = torch.stack([wo[:, 0, 0, 0], wo[:, 0, 0, -1], wo[:, 0, -1, 0], wo[:, 0, -1, -1]])
    assert (corners == 0).float().mean() > 0.5
    assert wo.mean() < 0.97


def test_sparse_never_zooms_out():
    aug = Augmenter("strong", sparse=True)
    assert aug.ops.zoom[0] >= 1.0 and Augmenter("strong").ops.zoom[0] < 1.0


def test_intensity_ops_change_image_only():
    x, y, w = _batch(n=8, p=32)
    ops = dict(
        p_brightness=1.0,
        brightness=0.1,
        p_contrast=1.0,
        contrast=(0.7, 1.4),
        p_gamma=1.0,
        gamma=(0.6, 1.6),
        p_noise=1.0,
        noise_std=0.05,
    )
    xo, yo, wo = Augmenter("none", **ops)(x, y, w)
    assert torch.equal(yo, y) and torch.equal(wo, w)
    assert (xo - x).abs().mean() > 0.01
    # the intensity change is per sample: corr with the input stays high
    for i in range(8):
        c = torch.corrcoef(torch.stack([x[i].flatten(), xo[i].flatten()]))[0, 1]
        assert c > 0.8


def test_gamma_keeps_sample_range():
    x, y, w = _batch(n=4)
    xo, _, _ = Augmenter("none", p_gamma=1.0, gamma=(0.5, 0.5))(x, y, w)
    lo, hi = x.amin(dim=(-2, -1)), x.amax(dim=(-2, -1))
    assert torch.allclose(xo.amin(dim=(-2, -1)), lo, atol=1e-5)
    assert torch.allclose(xo.amax(dim=(-2, -1)), hi, atol=1e-5)
    assert (xo.mean(dim=(-2, -1)) > x.mean(dim=(-2, -1)) + 0.05).all()  # gamma < 1 brightens


def test_curtaining_is_vertical_stripes():
    x = torch.full((4, 1, 64, 64), 0.5)
    y, w = torch.zeros_like(x), torch.ones_like(x)
    xo, _, _ = Augmenter("none", p_curtain=1.0, curtain=0.1)(x, y, w)
    d = xo - x
    across_columns = d.mean(dim=-2).std(dim=-1).flatten()  # column profile varies along x
    along_rows = (d[..., 1:, :] - d[..., :-1, :]).abs().mean(dim=(-2, -1)).flatten()
    assert (across_columns > 5 * along_rows).all()  # ... and is smooth along y
    assert (across_columns > 1e-3).all()


def test_blur_smooths_and_keeps_mean():
    x = torch.rand(4, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    y, w = torch.zeros(4, 1, 32, 32), torch.ones(4, 1, 32, 32)
    xo, _, _ = Augmenter("none", p_blur=1.0, blur_sigma=(0.8, 1.5))(x, y, w)
    assert (xo.std(dim=(-2, -1)) < 0.7 * x.std(dim=(-2, -1))).all()
    assert torch.allclose(xo.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), atol=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    x, y, w = (a.cuda() for a in _blobs())
    xo, yo, wo = Augmenter("strong", seed=1)(x, y, w)
    assert xo.is_cuda and yo.is_cuda and wo.is_cuda
    assert set(yo.unique().tolist()) <= {0.0, 1.0}


def test_non_square_patches_get_flips_only():
    n, h, w = 16, 8, 12
    x = torch.arange(n * h * w, dtype=torch.float32).view(n, 1, h, w)
    y = (x % 7 == 0).float()
    xo, yo, _ = Augmenter(
        "strong", seed=0, **GEOMETRY_ONLY, p_rotate=0.0, p_zoom=0.0, p_elastic=0.0, p_translate=0.0
    )(x, y, torch.ones_like(y))
    flips = lambda a: [a, a.flip(-1), a.flip(-2), a.flip(-1).flip(-2)]  # noqa: E731
    for i in range(n):
        hits = [j for j, f in enumerate(flips(x[i])) if torch.equal(f, xo[i])]
        assert len(hits) == 1 and torch.equal(flips(y[i])[hits[0]], yo[i])


def test_mixed_devices_raise():
    x, y, w = _batch()
    with pytest.raises(InputError, match="one device"):
        Augmenter()(x, y.to("meta"), w)
