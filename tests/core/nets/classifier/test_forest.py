"""The tree backend: learns, round-trips through bytes exactly, says what is wrong."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from napari_temseg.core.errors import InputError, ModelFileError  # noqa: E402
from napari_temseg.core.nets.classifier.forest import BACKENDS, DEFAULT_BACKEND, make_forest  # noqa: E402


def _toy(k, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x[:, 0] += 5 * y  # class is readable from feature 0
    return x, y


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("k", [2, 4])
def test_trees_learn_and_give_one_probability_per_class(k, backend):
    pytest.importorskip(backend.replace("extra-trees", "sklearn"))
    x, y = _toy(k)
    forest = make_forest(k, backend).fit(x[:2000], y[:2000])
    p = forest.predict_proba(x[2000:])
    assert p.shape == (1000, k) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    assert (p.argmax(1) == y[2000:]).mean() > 0.9


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_bytes_round_trip_gives_the_same_probabilities(backend):
    pytest.importorskip(backend.replace("extra-trees", "sklearn"))
    x, y = _toy(3)
    forest = make_forest(3, backend).fit(x, y)
    data = forest.to_bytes()
    assert isinstance(data, bytes) and b"\x80\x04" not in data[:2]  # not a pickle
    again = BACKENDS[backend].from_bytes(data, k=3)
    np.testing.assert_array_equal(again.predict_proba(x), forest.predict_proba(x))


def test_a_class_missing_from_the_strokes_gets_probability_zero():
    x, y = _toy(4)
    keep = y != 2
    p = make_forest(4).fit(x[keep], y[keep]).predict_proba(x)
    assert p.shape == (len(x), 4) and np.all(p[:, 2] == 0)


def test_trees_pointing_outside_themselves_are_refused():
    x, y = _toy(2, n=300)
    data = bytearray(make_forest(2, "extra-trees").fit(x, y).to_bytes())
    n = int.from_bytes(data[:4], "little")
    data[4 + n : 4 + n + 4] = (10**6).to_bytes(4, "little")  # first node's left child
    with pytest.raises(ModelFileError, match="damaged"):
        BACKENDS["extra-trees"].from_bytes(bytes(data), k=2)
    with pytest.raises(ModelFileError, match="damaged"):
        BACKENDS["extra-trees"].from_bytes(b"\x05\x00\x00\x00{oops", k=2)


def test_the_default_backend_is_registered():
    assert DEFAULT_BACKEND in BACKENDS


def test_untrained_trees_and_unknown_backends_are_one_line_errors():
    with pytest.raises(InputError, match="train it first"):
        make_forest(2).predict_proba(np.zeros((3, 6), np.float32))
    with pytest.raises(InputError, match="use one of extra-trees"):
        make_forest(2, backend="magic")
