"""core/data/synthetic/fibsem.py: deterministic, documented shapes, realistic,
and not solvable by a threshold.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_temseg.core.data.synthetic.fibsem import make_fibsem
from napari_temseg.core.data.synthetic.particles import make_particles
from napari_temseg.core.errors import InputError


def best_threshold_dice(img: np.ndarray, mask: np.ndarray) -> float:
    """Dice of the best single global threshold (either polarity): an oracle upper bound."""
    truth = mask > 0
    best = 0.0
    for t in np.quantile(img, np.linspace(0.01, 0.99, 99)):
        for pred in (img < t, img > t):
            best = max(best, 2 * np.sum(pred & truth) / (pred.sum() + truth.sum()))
    return float(best)


@pytest.fixture(scope="module")
def fib():
    return make_fibsem((6, 2, 160, 160), seed=5)


# --- determinism, shapes, dtypes ---------------------------------------------------------------
def test_fibsem_is_deterministic_per_seed():
    a, ma = make_fibsem((2, 2, 64, 64), seed=1)
    b, mb = make_fibsem((2, 2, 64, 64), seed=1)
    c, mc = make_fibsem((2, 2, 64, 64), seed=2)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.allclose(a, c) and not np.array_equal(ma, mc)


def test_particles_are_deterministic_per_seed():
    a, ma, ia = make_particles((64, 64), seed=1, instances=True)
    b, mb, ib = make_particles((64, 64), seed=1, instances=True)
    c, mc = make_particles((64, 64), seed=2)
    assert np.array_equal(a, b) and np.array_equal(ma, mb) and np.array_equal(ia, ib)
    assert not np.allclose(a, c) and not np.array_equal(ma, mc)


@pytest.mark.parametrize("shape", [(3, 1, 48, 64), (2, 2, 64, 48), (1, 1, 64, 64), (1, 3, 32, 40)])
def test_fibsem_shapes_and_dtypes(shape):
    img, mask = make_fibsem(shape, seed=0)
    assert img.shape == shape and img.dtype == np.float32
    assert mask.shape == (shape[0], *shape[2:]) and mask.dtype == np.uint8
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert set(np.unique(mask).tolist()) == {0, 1}  # the middle slice always holds a mitochondrion


def test_particles_shapes_and_dtypes():
    img, mask = make_particles((48, 80), seed=0)
    assert img.shape == mask.shape == (48, 80)
    assert img.dtype == np.float32 and mask.dtype == np.uint8
    assert img.min() >= 0.0 and img.max() <= 1.0 and set(np.unique(mask).tolist()) == {0, 1}
    _, _, inst = make_particles((48, 80), seed=0, instances=True)
    assert inst.dtype == np.uint16 and np.array_equal(inst > 0, mask > 0)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", np.uint16])
def test_integer_output_scales_to_full_range(dtype):
    f, m = make_fibsem((2, 1, 64, 64), seed=3)
    i, m2 = make_fibsem((2, 1, 64, 64), seed=3, dtype=dtype)
    top = np.iinfo(np.dtype(dtype)).max
    assert i.dtype == np.dtype(dtype) and np.array_equal(m, m2)
    assert np.abs(i / top - f).max() <= 1.0 / top
    p, _ = make_particles((32, 32), seed=3, dtype=dtype)
    assert p.dtype == np.dtype(dtype)


@pytest.mark.parametrize("bad", [dict(shape=(8, 8)), dict(shape=(1, 1, 8, 8)), dict(dtype="int8")])
def test_bad_arguments_raise_input_error(bad):
    want = r"dtype must be .*got 'int8'" if "dtype" in bad else r"at least 16 x 16 px, got \(8, 8\)"
    with pytest.raises(InputError, match=want):
        if len(bad.get("shape", (0, 0, 0, 0))) == 2:
            make_particles(**bad)
        else:
            make_fibsem(**bad)


def test_default_sizes_are_fast():
    make_fibsem((1, 1, 32, 32))  # warm the imports
    t0 = time.perf_counter()
    img, _ = make_fibsem()
    t1 = time.perf_counter()
    make_particles()
    t2 = time.perf_counter()
    assert img.shape == (8, 2, 256, 256)
    assert t1 - t0 < 2.0 and t2 - t1 < 0.5, (t1 - t0, t2 - t1)  # ~0.3 s / 0.02 s unloaded


# --- the images look like their ground truth ---------------------------------------------------
def test_mitochondria_have_dark_borders(fib):
    img, mask = fib
    m = mask.astype(bool)
    inner = ndi.binary_erosion(m, np.ones((1, 3, 3)), iterations=4)
    border = m & ~ndi.binary_erosion(m, np.ones((1, 3, 3)), iterations=3)
    outside = ndi.binary_dilation(m, np.ones((1, 3, 3)), iterations=6) & ~ndi.binary_dilation(
        m, np.ones((1, 3, 3)), iterations=2
    )
    for ch in range(2):
        x = img[:, ch]
        assert x[border].mean() < x[inner].mean() - 0.03, ch
        assert x[border].mean() < x[outside].mean() - 0.05, ch


def test_mitochondria_persist_across_slices(fib):
    _, mask = fib
    ious = [
        np.sum(a & b) / np.sum(a | b) for a, b in zip(mask[:-1] > 0, mask[1:] > 0, strict=False)
    ]
    assert min(ious) > 0.4, ious
    labels, n = ndi.label(mask)
    depth = [np.ptp(np.nonzero(labels == i)[0]) + 1 for i in range(1, n + 1)]
    assert np.median(depth) >= 3  # 3D objects, not independent 2D blobs per slice
    assert 0.05 < mask.mean() < 0.45


def test_global_threshold_is_clearly_imperfect(fib):
    img, mask = fib
    for ch in range(2):
        assert best_threshold_dice(img[:, ch], mask) < 0.8
        smooth = ndi.gaussian_filter(img[:, ch], (0, 2, 2))  # denoising does not rescue it
        assert best_threshold_dice(smooth, mask) < 0.8


def test_distractors_are_dark_but_not_in_the_mask(fib):
    img, mask = fib
    x = ndi.gaussian_filter(img[:, 1], (0, 1, 1))
    dark = x < np.quantile(x, 0.02)
    far = ~ndi.binary_dilation(mask > 0, np.ones((1, 3, 3)), iterations=3)
    assert np.mean(far[dark]) > 0.2  # many of the darkest pixels are granules / vesicles / ER


def test_channels_are_two_different_detectors():
    clean, _ = make_fibsem((3, 2, 96, 96), seed=7, noise=0)
    noisy, _ = make_fibsem((3, 2, 96, 96), seed=7)
    noise_sd = (noisy - clean).std(axis=(0, 2, 3))
    assert noise_sd[0] > 1.3 * noise_sd[1]  # ICE noisier than TLD
    sharp = []  # fine detail relative to mid-scale structure
    for c in range(2):
        x = clean[:, c]
        g1, g4 = ndi.gaussian_filter(x, (0, 1, 1)), ndi.gaussian_filter(x, (0, 4, 4))
        sharp.append(np.abs(x - g1).mean() / np.abs(g1 - g4).mean())
    assert sharp[1] > 1.4 * sharp[0]  # TLD sharper
    assert np.corrcoef(clean[:, 0].ravel(), clean[:, 1].ravel())[0, 1] < 0.95


def test_curtaining_is_vertical_stripes():
    on, _ = make_fibsem((2, 1, 128, 128), seed=4, noise=0)
    off, _ = make_fibsem((2, 1, 128, 128), seed=4, noise=0, curtaining=0)
    diff = (on - off)[:, 0]
    assert np.abs(diff).max() > 0.03
    across_x = diff.mean(axis=1).std()  # varies column to column
    across_y = diff.mean(axis=2).std()
    assert across_x > 3 * across_y


def test_detector_response_is_uneven():
    img, mask = make_fibsem((4, 1, 128, 128), seed=6, distractors=0, curtaining=0)
    bg = np.where(mask[:, None] == 0, img, np.nan)[:, 0]
    quads = [
        np.nanmean(bg[:, ys, xs])
        for ys in (slice(0, 64), slice(64, None))
        for xs in (slice(0, 64), slice(64, None))
    ]
    assert max(quads) - min(quads) > 0.04


def test_particles_are_dark_varied_and_touching():
    img, mask, inst = make_particles((256, 256), seed=0, instances=True)
    assert img[mask > 0].mean() < img[mask == 0].mean() - 0.15
    areas = np.bincount(inst.ravel())[1:]
    areas = areas[areas > 0]
    assert len(areas) >= 30
    assert areas.std() / areas.mean() > 0.4 and areas.max() > 5 * areas.min()
    pairs = set()
    for a, b in ((inst[:, :-1], inst[:, 1:]), (inst[:-1], inst[1:])):
        touch = (a > 0) & (b > 0) & (a != b)
        pairs |= {tuple(sorted(p)) for p in zip(a[touch].tolist(), b[touch].tolist(), strict=False)}
    assert len(pairs) >= 3


def test_particles_not_solved_by_a_global_threshold():
    img, mask = make_particles((256, 256), seed=1)
    assert best_threshold_dice(img, mask) < 0.8
    assert best_threshold_dice(ndi.gaussian_filter(img, 1.5), mask) < 0.8
