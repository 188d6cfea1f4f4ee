import math

import numpy as np
import pytest
from _core_helpers import pad_to_multiple, tile_grid

from napari_temseg.core.errors import InputError
from napari_temseg.core.inference import tiling


@pytest.mark.parametrize("size", [1, 15, 64, 65, 100, 511, 512, 513, 1000, 4062])
@pytest.mark.parametrize("tile,overlap", [(64, 0.0), (64, 0.25), (128, 0.5), (512, 0.25)])
def test_tile_starts_cover_axis_with_enough_overlap(size, tile, overlap):
    starts = tiling.tile_starts(size, tile, overlap)
    assert starts[0] == 0
    if size <= tile:
        assert starts == [0]
        return
    assert starts[-1] == size - tile  # last tile flush with the end
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()
    steps = np.diff(starts)
    target = math.ceil(tile * (1 - overlap))
    assert steps.max() <= target and steps.min() >= 1
    assert steps.max() - steps.min() <= 1  # evenly spread
    # no more tiles than needed: one fewer tile could not cover with this step
    assert (len(starts) - 2) * target < size - tile


def test_tile_starts_errors():
    with pytest.raises(InputError, match="overlap"):
        tiling.tile_starts(100, 32, 1.0)
    with pytest.raises(InputError, match="axis length and tile must be >= 1, got 0 and 32"):
        tiling.tile_starts(0, 32, 0.25)


def test_tile_grid_and_shape():
    grid = tile_grid((100, 70), (64, 48), 0.25)
    ys = sorted({y for y, _ in grid})
    xs = sorted({x for _, x in grid})
    assert len(grid) == len(ys) * len(xs)
    assert ys[-1] == 100 - 64 and xs[-1] == 70 - 48
    assert tiling.tile_shape((37, 1000), 512, 16) == (48, 512)
    assert tiling.tile_shape((3000, 3000), 512, 32) == (512, 512)


def test_check_tile_rounds_to_stride():
    assert tiling.check_tile(500, 32) == 480
    assert tiling.check_tile(512, 16) == 512
    with pytest.raises(InputError, match="tile size"):
        tiling.check_tile(8, 16)


@pytest.mark.parametrize("shape", [(64, 64), (33, 80)])
def test_gaussian_weights(shape):
    w = tiling.blend_weights(shape, "gaussian")
    assert w.shape == shape and w.dtype == np.float32
    assert np.isclose(w.max(), 1.0) and w.min() > 0
    np.testing.assert_allclose(w, w[::-1, ::-1], rtol=1e-6)  # symmetric
    cy, cx = (shape[0] - 1) // 2, (shape[1] - 1) // 2
    assert w[cy, cx] > w[0, cx] > w[0, 0]  # peaks in the centre, decays outward
    sharp = tiling.blend_weights(shape, "gaussian", sigma_scale=1 / 16)
    assert sharp[0, cx] < w[0, cx]


def test_constant_weights_and_bad_mode():
    np.testing.assert_array_equal(tiling.blend_weights(8, "constant"), np.ones((8, 8), np.float32))
    with pytest.raises(InputError, match="blend mode"):
        tiling.blend_weights(8, "median")


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_weighted_blend_reconstructs_constant_field(mode):
    shape = (77, 131)
    tile = (32, 48)
    grid = tile_grid(shape, tile, 0.3)
    w = tiling.blend_weights(tile, mode)
    ws = tiling.weight_sum(shape, grid, w)
    assert ws.min() > 0
    rng = np.random.default_rng(1)
    field = rng.normal(size=shape).astype(np.float32)
    acc = np.zeros(shape, np.float32)
    for y, x in grid:
        acc[y : y + tile[0], x : x + tile[1]] += field[y : y + tile[0], x : x + tile[1]] * w
    np.testing.assert_allclose(acc / ws, field, atol=1e-5)


def test_pad_to_multiple_reflects_and_keeps_original():
    a = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    p, orig = pad_to_multiple(a, 4)
    assert p.shape == (2, 8, 8) and orig == (5, 7)
    np.testing.assert_array_equal(p[:, :5, :7], a)
    np.testing.assert_array_equal(p[:, 5, :7], a[:, 3])  # reflect (no edge repeat)
    p2, _ = pad_to_multiple(a, 16, min_shape=(20, 0))
    assert p2.shape == (2, 32, 16)
    one = np.ones((1, 1, 5), np.float32)
    assert pad_to_multiple(one, 16)[0].shape == (1, 16, 16)
    with pytest.raises(InputError, match=r"cannot pad \(5, 7\) to a smaller \(4, 7\)"):
        tiling.pad_to(a, (4, 7))


@pytest.mark.parametrize(
    "size,tile,m", [(600, 256, 16), (600, 512, 16), (1000, 96, 32), (37, 32, 16)]
)
def test_aligned_starts_lie_on_the_stride_and_cover_the_padded_axis(size, tile, m):
    starts = tiling.aligned_starts(size, tile, 0.25, m)
    padded = tiling.round_up(size, m)
    assert all(s % m == 0 for s in starts) and starts[0] == 0
    assert starts[-1] + tile >= padded and starts == sorted(set(starts))
    assert all(b - a <= tile for a, b in zip(starts, starts[1:], strict=False))
    with pytest.raises(InputError, match="stride"):
        tiling.aligned_starts(size, tile + 1, 0.25, m)
