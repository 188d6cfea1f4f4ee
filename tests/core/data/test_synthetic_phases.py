"""The multi-phase FIB-SEM generator: shapes, determinism, phase shares, 3D coherence and
complementary detectors (both channels together classify clearly better than either)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_temseg.core.data.synthetic.phases import PHASE_COLORS, PHASE_NAMES, make_phases
from napari_temseg.core.errors import InputError

MATRIX, PORES, GRAINS, HYDRATION = range(4)


@pytest.fixture(scope="module")
def stack():
    return make_phases((12, 192, 192), seed=7)


def test_constants():
    assert PHASE_NAMES == ("matrix", "pores", "unhydrated grains", "hydration products")
    assert len(PHASE_COLORS) == 4 and len(set(PHASE_COLORS)) == 4
    assert all(c.startswith("#") and len(c) == 7 for c in PHASE_COLORS)


def test_shapes_dtypes_and_values(stack):
    image, labels = stack
    assert image.shape == (12, 2, 192, 192) and image.dtype == np.float32
    assert labels.shape == (12, 192, 192) and labels.dtype == np.uint8
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    one, lab1 = make_phases((2, 32, 48), channels=1, seed=1, dtype="uint16")
    assert one.shape == (2, 1, 32, 48) and one.dtype == np.uint16 and lab1.shape == (2, 32, 48)
    assert make_phases((1, 16, 16), dtype=np.uint8)[0].dtype == np.uint8


def test_deterministic_given_seed():
    a, la = make_phases((3, 48, 48), seed=3)
    b, lb = make_phases((3, 48, 48), seed=3)
    c, lc = make_phases((3, 48, 48), seed=4)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(la, lc) and not np.allclose(a, c)


def test_phase_shares(stack):
    share = np.bincount(stack[1].ravel(), minlength=4) / stack[1].size
    assert 0.40 <= share[MATRIX] <= 0.56, share
    assert 0.05 <= share[PORES] <= 0.12, share
    assert 0.15 <= share[GRAINS] <= 0.25, share
    assert 0.15 <= share[HYDRATION] <= 0.25, share


def test_phases_are_coherent_in_3d(stack):
    labels = stack[1]
    near = np.mean(labels[1:] == labels[:-1])
    far = np.mean(labels[8:] == labels[:-8])
    assert near > 0.8 and far < near - 0.2, (near, far)


def _means(image, labels):
    return np.array([[image[:, ch][labels == k].mean() for k in range(4)] for ch in range(2)])


def test_each_detector_has_its_own_contrast(stack):
    (ice, tld) = _means(*stack)
    assert ice[PORES] < ice[MATRIX] < ice[HYDRATION] < ice[GRAINS]
    assert tld[PORES] < tld[MATRIX] < tld[HYDRATION] < tld[GRAINS]
    # ICE: pores vs matrix far apart, grains vs hydration products close; TLD the other way
    assert ice[MATRIX] - ice[PORES] > 3 * (tld[MATRIX] - tld[PORES])
    assert tld[GRAINS] - tld[HYDRATION] > 2 * (ice[GRAINS] - ice[HYDRATION])


def test_both_detectors_beat_either_alone(stack):
    """A per-pixel nearest-class-mean classifier: both channels clearly beat the best single."""
    image, labels = stack
    x = image.transpose(0, 2, 3, 1).reshape(-1, 2)
    y = labels.ravel()
    means = np.stack([x[y == k].mean(0) for k in range(4)])

    def accuracy(cols):
        d = ((x[:, None, cols] - means[None, :, cols]) ** 2).sum(-1)
        return np.mean(d.argmin(1) == y)

    ice, tld, both = accuracy([0]), accuracy([1]), accuracy([0, 1])
    assert both > max(ice, tld) + 0.08, (ice, tld, both)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(shape=(8, 2, 64, 64)),
        dict(shape=(64, 64)),
        dict(shape=(2, 8, 64)),
        dict(shape=(0, 32, 32)),
        dict(shape=None),
        dict(shape=(2, 32, 32), channels=3),
        dict(shape=(2, 32, 32), channels=0),
        dict(shape=(2, 32, 32), channels=2.0),
        dict(shape=(2, 32, 32), grain_radius=0),
        dict(shape=(2, 32, 32), dtype="int8"),
    ],
)
def test_bad_input_gives_one_line_input_error(kwargs):
    with pytest.raises(InputError) as err:
        make_phases(**kwargs)
    assert "\n" not in str(err.value)
