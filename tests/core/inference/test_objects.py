"""Instance labels of touching objects: watershed split, border exclusion."""

import numpy as np
import pytest

from napari_temseg.core.config.choices import ConfigError
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.inference.postprocess import postprocess, split_objects


def discs(centres, r=10, shape=(64, 96)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    b = np.zeros(shape, bool)
    for cy, cx in centres:
        b |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return b


def test_touching_discs_are_split_and_single_ones_are_not():
    pair = discs([(32, 30), (32, 47)])  # overlap: one connected blob with a neck
    cc, n = postprocess(pair, instances=True, dtype=np.uint32)
    assert n - 1 == 1  # connected components: one object
    lab, n = postprocess(pair, instances=True, split_touching=True, dtype=np.uint32)
    assert n - 1 == 2 and set(np.unique(lab)) == {0, 1, 2}
    sizes = np.bincount(lab.ravel())[1:]
    assert abs(int(sizes[0]) - int(sizes[1])) < 0.1 * sizes.sum()  # cut near the neck
    bumpy = discs([(32, 40)], r=14) | discs([(32, 55)], r=3)  # a small bump, not an object
    assert split_objects(bumpy)[1] == 1
    assert split_objects(np.zeros((8, 8), bool)) == (pytest.approx(np.zeros((8, 8))), 0)


def test_border_objects_min_size_and_unique_ids_across_slices():
    b = discs([(32, 30), (32, 47), (5, 90)])  # the third touches the border
    lab, nxt = postprocess(
        b, instances=True, split_touching=True, exclude_border=True, dtype=np.uint32
    )
    assert nxt == 3 and lab[5, 90] == 0
    lab2, nxt2 = postprocess(b, instances=True, split_touching=True, first_label=nxt,
                             min_size=250, dtype=np.uint32)  # fmt: skip
    assert set(np.unique(lab2)) == {0, 3, 4} and nxt2 == 5  # the cut-off third (213 px) goes
    with pytest.raises(ConfigError, match="work on instance labels: turn instances on"):
        PredictConfig(split_touching=True)
