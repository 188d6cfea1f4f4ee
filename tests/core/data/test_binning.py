"""data/binning.py: block means, block-majority labels, the inverse interpolation, lazy views."""

import numpy as np
import pytest

from napari_temseg.core.data.binning import (
    BinnedArray,
    BinnedLabels,
    bin_image,
    bin_labels,
    binned_size,
    unbin,
)
from napari_temseg.core.data.volume import as_mask, as_volume


def test_bin_image_block_means_and_edges():
    a = np.arange(5 * 7, dtype=np.uint16).reshape(5, 7)
    b = bin_image(a, 2)
    assert b.shape == (3, 4) and b.dtype == np.float32
    assert b[0, 0] == np.mean(a[:2, :2])
    # partial edge blocks: the mean of their real pixels (as avg_pool2d with ceil_mode)
    assert b[2, 3] == a[4, 6]
    assert b[2, 0] == np.mean(a[4, :2])
    assert b[1, 3] == np.mean(a[2:4, 6])
    import torch

    pooled = torch.nn.functional.avg_pool2d(
        torch.from_numpy(a.astype(np.float32))[None, None], 2, ceil_mode=True
    )[0, 0].numpy()
    np.testing.assert_allclose(b, pooled, rtol=1e-6)
    assert bin_image(a, 1) is a


def test_bin_labels_majority_and_sparse_unlabelled():
    m = np.array([[1, 1, 0, 2], [1, 0, 0, 0], [0, 0, 3, 3], [0, 0, 3, 2]], np.uint8)
    assert bin_labels(m, 2).tolist() == [[1, 0], [0, 3]]
    # sparse: 0 = unlabelled loses to any painted label, wins only an empty block
    assert bin_labels(m, 2, unlabelled=0).tolist() == [[1, 2], [0, 3]]
    tie = np.array([[1, 2], [2, 1]], np.uint8)
    assert bin_labels(tie, 2).tolist() == [[1]]  # ties: the smaller label
    assert bin_labels(m, 2).dtype == np.uint8


def test_unbin_inverts_the_geometry():
    # a linear ramp sampled at block centres comes back as the same ramp inside the image
    Y, X, s = 12, 10, 2
    yy, xx = np.mgrid[0:Y, 0:X].astype(np.float32)
    ramp = 0.01 * yy + 0.02 * xx
    back = unbin(bin_image(ramp, s), (Y, X), s)
    assert back.shape == (Y, X)
    np.testing.assert_allclose(back[1:-1, 1:-1], ramp[1:-1, 1:-1], atol=1e-5)
    k = unbin(np.stack([bin_image(ramp, s)] * 3), (Y, X), s)
    assert k.shape == (3, Y, X)
    odd = unbin(np.zeros((3, 3), np.float32), (5, 6), 2)
    assert odd.shape == (5, 6)


def test_binned_views_read_bands_lazily():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (2, 9, 11), dtype=np.uint8)
    vol = as_volume(img)
    view = BinnedArray(vol, 2)
    assert view.shape == (2, 1, binned_size(9, 2), binned_size(11, 2)) == (2, 1, 5, 6)
    whole = bin_image(img[1], 2)
    np.testing.assert_array_equal(view[1, slice(None), slice(None), slice(None)][0], whole)
    np.testing.assert_array_equal(
        view[1, slice(None), slice(2, 5), slice(1, 4)][0], whole[2:5, 1:4]
    )
    mask = as_mask((img > 128).astype(np.uint8), vol)
    labels = BinnedLabels(mask, 2, None)
    got = labels[0, slice(None), slice(None), slice(None)][0]
    np.testing.assert_array_equal(got, bin_labels((img[0] > 128).astype(np.uint8), 2))


@pytest.mark.parametrize("s", [2, 4])
def test_bin_then_unbin_keeps_large_objects(s):
    yy, xx = np.mgrid[0:64, 0:64]
    disk = ((yy - 30) ** 2 + (xx - 33) ** 2 < 18**2).astype(np.float32)
    back = unbin(bin_image(disk, s), disk.shape, s) >= 0.5
    inter = np.logical_and(back, disk > 0).sum()
    assert 2 * inter / (back.sum() + disk.sum()) > 0.97


# --------------------------------------------------------------------------- fit / predict
def _disks(shape=(2, 256, 256), r=60, seed=0):
    """A stack with a few large bright disks on a noisy background (large objects)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[1], 0 : shape[2]]
    mask = np.zeros(shape, np.uint8)
    for z in range(shape[0]):
        for cy, cx in rng.uniform(r, shape[1] - r, (2, 2)):
            mask[z][(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = 1
    img = (100 + 60 * mask + rng.normal(0, 20, shape)).clip(0, 255).astype(np.uint8)
    return img, mask


def _cfg(**kw):
    from napari_temseg.core.config.train import TrainConfig

    base = dict(patch=64, batch=2, epochs=1, steps_per_epoch=2, augment="flips", device="cpu")
    return TrainConfig(**{**base, **kw})


def test_auto_binning_follows_the_masks():
    from napari_temseg.core.data.binning import auto_binning

    img, mask = _disks()
    vol = as_volume(img)
    big = [as_mask(mask, vol)]
    items = [(0, 0), (0, 1)]
    assert auto_binning(big, items, sparse=False) == 2
    assert auto_binning(big, items, sparse=True) == 1  # scribbles: no dense boundaries
    lines = np.zeros_like(mask)
    lines[:, ::12] = 1  # membranes: every pixel near a boundary
    assert auto_binning([as_mask(lines, vol)], items, sparse=False) == 1
    small = as_volume(img[:, :200, :200])
    assert auto_binning([as_mask(mask[:, :200, :200], small)], items, sparse=False) == 1


def test_binned_training_predicts_at_full_resolution(tmp_path):
    """binning 2: trained on block means, saved with the model, predicted binned and
    interpolated back: the same as predicting the binned image by hand and unbinning."""
    import dataclasses

    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.modelfile.format import load_model
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    img, mask = _disks()
    model = run(fit(img, mask, train_cfg=_cfg()))  # auto -> 2 for these large disks
    assert model.input_spec.binning == 2
    back = load_model(model.save(tmp_path / "binned.safetensors"))
    assert back.input_spec.binning == 2 and "binning=2" in repr(back)
    odd = img[:1, :99, :77]
    pc = PredictConfig(tile=64, device="cpu")
    res = run(predict_stack(back, odd, pc))
    assert res.prob.shape == res.labels.shape == (1, 99, 77)
    plain = dataclasses.replace(back, input_spec=dataclasses.replace(back.input_spec, binning=1))
    small = run(predict_stack(plain, bin_image(odd, 2), pc)).prob
    np.testing.assert_allclose(res.prob, unbin(small, (99, 77), 2), atol=1e-5)
    assert np.array_equal(res.labels[0], res.prob[0] >= back.threshold)
    thin = run(fit(img, mask, train_cfg=_cfg(binning=1)))
    assert thin.input_spec.binning == 1


def test_binning_of_a_resumed_model_cannot_change():
    from napari_temseg.core.errors import InputError
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    img, mask = _disks()
    model = run(fit(img, mask, train_cfg=_cfg(binning=2)))
    more = run(fit(img, mask, train_cfg=_cfg(), resume=model))  # auto: the model's
    assert more.input_spec.binning == 2
    with pytest.raises(InputError, match="cannot continue training with binning 1"):
        run(fit(img, mask, train_cfg=_cfg(binning=1), resume=model))


def test_a_class_binned_away_names_the_fix():
    """Painted areas smaller than a block vanish when binned: the error says so."""
    from napari_temseg.core.errors import InputError
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    img, mask = _disks()
    mask[:, 10, 10] = 2  # a third class painted on single pixels only
    mask[:, 40, 200] = 2
    with pytest.raises(InputError, match="binned 2 x 2 .* try binning 1"):
        run(fit(img, mask, train_cfg=_cfg(binning=2)))
    model = run(fit(img, mask, train_cfg=_cfg(binning=1)))
    assert model.classes.k == 3


def test_auto_binning_falls_back_when_a_class_would_vanish():
    """auto would bin these large disks 2 x 2, but a class painted only in specks cannot
    survive that: training runs at full resolution instead, and says so once."""
    from napari_temseg.core.training.loop import fit

    img, mask = _disks()
    mask[:, 10, 10] = 2
    mask[:, 40, 200] = 2
    gen = fit(img, mask, train_cfg=_cfg())
    warnings = []
    try:
        while True:
            warnings.append(next(gen).warning)
    except StopIteration as done:
        model = done.value
    assert model.input_spec.binning == 1 and model.classes.k == 3
    assert warnings and "merge away small painted areas" in warnings[0]
    mask[:, 10:14, 10:14] = 2  # a painted area that survives binning: auto keeps 2
    assert next(fit(img, mask, train_cfg=_cfg())).warning is None
