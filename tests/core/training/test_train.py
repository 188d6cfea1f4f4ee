"""fit(): learning, determinism, stopping, sparse labels, warm start,
and every bad input (a message naming the fix, never a traceback).
"""

import numpy as np
import pytest

from napari_temseg.core.config.choices import ConfigError
from napari_temseg.core.config.model import ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.config.train import TrainConfig
from napari_temseg.core.data.synthetic.fibsem import make_fibsem
from napari_temseg.core.data.synthetic.particles import make_particles
from napari_temseg.core.data.volume import as_mask, as_volume
from napari_temseg.core.errors import InputError
from napari_temseg.core.progress import Progress, StopToken, run
from napari_temseg.core.training.loop import fit
from napari_temseg.core.training.objectives import health_warning
from napari_temseg.core.training.sampling import PatchSampler, split_regions, target_and_weight

TINY = ModelConfig(arch="small-unet")


def cfg(**kw):
    base = dict(
        patch=64,
        batch=4,
        epochs=1,
        seconds=None,
        steps_per_epoch=3,
        augment="flips",
        seed=0,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def stack():
    return make_fibsem(shape=(4, 1, 64, 64), seed=3)


def test_fit_learns_synthetic_stack():
    img, mask = make_fibsem(shape=(4, 2, 96, 96), seed=1)
    seen = []
    model = run(
        fit(img, mask, train_cfg=cfg(epochs=6, steps_per_epoch=12, lr=3e-3, context=1)), seen.append
    )
    assert all(isinstance(p, Progress) and p.stage == "train" for p in seen)
    assert len(seen) == 6 * 12 and seen[-1].step == 72 and seen[-1].fraction == 1.0
    assert model.input_spec.channels == 2 and model.input_spec.context == 1
    assert model.model_cfg.in_channels == 6  # 2 channels x 3 slices
    # chance level: predicting all foreground gives Dice = 2f/(1+f) for foreground fraction f
    f = mask.mean()
    best = max(h["val_dice"] for h in model.history)
    assert best > max(0.6, 2 * f / (1 + f) + 0.15), (best, f)
    losses = [h["loss"] for h in model.history]
    assert losses[-1] < losses[0]


def test_fit_is_deterministic_on_cpu(stack):
    img, mask = stack
    a = run(fit(img, mask, train_cfg=cfg(augment="default")))
    b = run(fit(img, mask, train_cfg=cfg(augment="default")))
    for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=False):
        assert np.array_equal(va.numpy(), vb.numpy()), k
    c = run(fit(img, mask, train_cfg=cfg(augment="default", seed=1)))
    assert any(
        not np.array_equal(va.numpy(), vc.numpy())
        for va, vc in zip(a.net.state_dict().values(), c.net.state_dict().values(), strict=False)
    )


def test_stop_token_returns_best_model(stack):
    img, mask = stack
    stop = StopToken()
    steps = []

    def on(p):
        steps.append(p.step)
        if p.step == 2:
            stop.request()

    model = run(fit(img, mask, train_cfg=cfg(epochs=50), stop=stop), on)
    assert steps == [1, 2]
    assert len(model.history) == 1 and "val_dice" in model.history[0]
    x = np.zeros((1, 1, 64, 64), np.float32)
    import torch

    assert model.net(torch.from_numpy(x)).shape == (1, 1, 64, 64)


def test_time_budget_and_fraction(stack):
    img, mask = stack
    seen = []
    run(fit(img, mask, train_cfg=cfg(epochs=None, seconds=1.5, steps_per_epoch=1000)), seen.append)
    assert seen[-1].fraction == 1.0 and 1.5 <= seen[-1].elapsed < 15
    assert seen[-1].total is None


def test_unannotated_slices_are_skipped_and_explicit_list_counts(stack):
    img, mask = stack
    painted = mask.copy()
    painted[[0, 2, 3]] = 0
    model = run(fit(img, painted, train_cfg=cfg(val_fraction=0.2)))
    # trained on slice 1 alone: one epoch, validated on a held-out region of that same slice
    assert len(model.history) == 1 and model.history[0]["step"] == 3
    assert 0.0 <= model.history[0]["val_dice"] <= 1.0
    with pytest.raises(InputError, match="outside the stack"):
        run(fit(img, painted, train_cfg=cfg(), annotated=[1, 9]))
    run(fit(img, painted, train_cfg=cfg(), annotated=[1, 2]))  # slice 2 is truly empty: allowed


def test_single_slice_is_split_by_region():
    train, val = split_regions([(0, 0)], [(100, 200)], 0.2, 0)
    assert len(train) == len(val) == 1
    assert train[0].x1 == val[0].x0 == 160 and val[0].x1 == 200
    tr, va = split_regions([(0, z) for z in range(5)], [(16, 16)], 0.2, 0)
    assert len(tr) == 4 and len(va) == 1 and va[0] not in tr


def test_sparse_scribbles_ignore_unlabelled_pixels():
    img, truth = make_particles(shape=(96, 96), seed=2)
    scrib = np.zeros_like(truth)
    fg, bg = np.argwhere(truth == 1), np.argwhere(truth == 0)
    rng = np.random.default_rng(0)
    for pts, lab in ((fg, 1), (bg, 2)):
        sel = pts[rng.choice(len(pts), 300, replace=False)]
        scrib[sel[:, 0], sel[:, 1]] = lab
    t, w = target_and_weight(scrib, sparse=True)
    assert w.sum() == 600 and t.sum() == 300 and np.all(t <= w)
    vol = as_volume(img)
    sampler = PatchSampler(
        [vol],
        [as_mask(scrib, vol)],
        split_regions([(0, 0)], [(96, 96)], 0, 0)[0],
        _spec(vol),
        32,
        True,
        0.5,
        0,
    )
    x, y, w = sampler.sample(16)
    assert np.all(w.reshape(16, -1).sum(1) > 0)  # every patch is centred on a labelled pixel
    model = run(fit(img, scrib, train_cfg=cfg(sparse=True, epochs=2, teacher="none")))
    assert model.train_cfg.sparse and len(model.history) == 2
    with pytest.raises(InputError, match="outside the label set.*sparse mode"):
        run(fit(img, scrib, train_cfg=cfg(sparse=False, classes=2)))


def _spec(vol):
    from napari_temseg.core.config.model import InputSpec

    return InputSpec(
        channels=vol.shape[1], norm_lo=(0.0,) * vol.shape[1], norm_hi=(1.0,) * vol.shape[1]
    )


def test_warm_start_continues_history(stack):
    img, mask = stack
    first = run(fit(img, mask, train_cfg=cfg()))
    second = run(fit(img, mask, train_cfg=cfg(), resume=first))
    assert len(second.history) == 2 and second.history[1]["epoch"] == 2
    assert second.input_spec == first.input_spec
    img2 = np.concatenate([img, img], axis=1)
    with pytest.raises(InputError, match="cannot continue training"):
        run(fit(img2, mask, train_cfg=cfg(), resume=first))


def test_flat_loss_and_constant_prediction_are_reported():
    hist = [{"loss": 0.7}] * 4
    assert "not learning" in health_warning(hist, False)
    assert health_warning([{"loss": 0.7}, {"loss": 0.3}] * 2, False) is None
    assert "same class everywhere" in health_warning(hist[:1], True)


def test_no_learning_is_visible_in_progress(stack):
    img, mask = stack
    seen = []
    run(fit(img, mask, train_cfg=cfg(lr=1e-9, epochs=4, steps_per_epoch=2)), seen.append)
    assert any(p.warning for p in seen)


# --- bad input: each gets one clear InputError ------------------------------------------------
def test_mask_shape_mismatch(stack):
    img, mask = stack
    with pytest.raises(InputError, match="does not match the image"):
        run(fit(img, mask[:, :32], train_cfg=cfg()))


def test_mask_values_outside_label_set(stack):
    img, mask = stack
    with pytest.raises(InputError, match=r"labels \[3\]"):
        run(fit(img, mask * 3, train_cfg=cfg(classes=2)))
    # auto: values 0 and 3 mean 4 classes, two of which have no pixel
    with pytest.raises(InputError, match=r"'class 1', 'class 2' \(labels 1, 2\) have no"):
        run(fit(img, mask * 3, train_cfg=cfg()))
    run(fit(img, mask * 255, train_cfg=cfg()))  # 0/255 masks are read as 0/1 (documented)


def test_no_annotated_slice(stack):
    img, mask = stack
    with pytest.raises(InputError, match="no annotated slice"):
        run(fit(img, np.zeros_like(mask), train_cfg=cfg()))


def test_no_foreground_or_all_foreground(stack):
    img, mask = stack
    with pytest.raises(InputError, match="no background"):
        run(fit(img, np.ones_like(mask), train_cfg=cfg()))
    with pytest.raises(InputError, match="no foreground"):
        run(fit(img, mask * 0, train_cfg=cfg(), annotated=[0, 1]))


def test_nan_inf_pixels_are_handled(stack):
    img, mask = stack
    bad = img.copy()
    bad[0, 0, :5] = np.nan
    bad[1, 0, :, :3] = np.inf
    model = run(fit(bad, mask, train_cfg=cfg()))
    assert np.isfinite(model.history[-1]["loss"])
    assert all(np.isfinite(v) for v in model.input_spec.norm_lo + model.input_spec.norm_hi)


@pytest.mark.parametrize("kind", ["uint16", "float64", "rgb"])
def test_other_dtypes_and_rgb(kind):
    img, mask = make_particles(shape=(64, 64), seed=0)
    if kind == "uint16":
        img = (img * 60000).clip(0, 65535).astype(np.uint16)
    elif kind == "float64":
        img = img.astype(np.float64) * 1e4 - 3
    else:
        img = np.repeat((img.clip(0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)
    model = run(fit(img, mask, train_cfg=cfg()))
    assert model.input_spec.channels == 1  # RGB micrographs become one gray channel (documented)


def test_context_on_single_slice():
    img, mask = make_particles(shape=(64, 64), seed=0)
    with pytest.raises(InputError, match="context=1 needs neighbouring slices"):
        run(fit(img, mask, train_cfg=cfg(context=1)))


def test_patch_larger_than_image_is_padded():
    img, mask = make_particles(shape=(40, 50), seed=0)
    model = run(fit(img, mask, train_cfg=cfg(patch=64, val_fraction=0.0)))
    assert model.history and np.isfinite(model.history[-1]["loss"])


def test_images_of_different_sizes_form_one_training_set():
    a, ma = make_particles(shape=(64, 80), seed=0)
    b, mb = make_particles(shape=(96, 64), seed=1)
    model = run(fit([a, b], [ma, mb], train_cfg=cfg()))
    assert len(model.history) == 1 and model.history[0]["step"] == 3
    assert 0.0 <= model.history[0]["val_dice"] <= 1.0  # validated on one of the two images
    from napari_temseg.core.inference.predict import predict_slice

    for im in (a, b):  # the one model predicts either size
        p = predict_slice(model, im, 0)
        assert p.shape == im.shape and np.isfinite(p).all()
    with pytest.raises(InputError, match="one mask per image"):
        run(fit([a, b], [ma], train_cfg=cfg()))


def test_per_image_normalisation_ignores_each_images_contrast():
    """intensity_norm 'image': an image and a brightened, contrast-stretched copy give one input."""
    from napari_temseg.core.config.model import InputSpec
    from napari_temseg.core.data.volume import network_input

    img, mask = make_particles(shape=(64, 64), seed=0)
    spec = InputSpec(channels=1, norm_lo=(0.0,), norm_hi=(1.0,), intensity_norm="image")
    a = network_input(as_volume(img), 0, spec)
    b = network_input(as_volume(img * 7.0 + 100.0), 0, spec)
    assert np.allclose(a, b, atol=1e-4)
    part = network_input(as_volume(img * 7.0 + 100.0), 0, spec, slice(10, 30), slice(5, 40))
    assert np.allclose(part, a[:, 10:30, 5:40], atol=1e-4)  # tiles see the whole slice's range
    dataset = InputSpec(channels=1, norm_lo=(0.0,), norm_hi=(1.0,))
    assert not np.allclose(network_input(as_volume(img * 7.0 + 100.0), 0, dataset), a, atol=1e-2)
    model = run(fit([img, img * 7.0 + 100.0], [mask, mask], train_cfg=cfg(intensity_norm="image")))
    assert model.input_spec.intensity_norm == "image"
    with pytest.raises(ConfigError, match="intensity_norm must be one of"):
        cfg(intensity_norm="per-pixel")


def test_per_image_normalisation_reaches_prediction():
    from napari_temseg.core.inference.predict import predict_stack

    img, mask = make_particles(shape=(64, 64), seed=1)
    model = run(fit(img, mask, train_cfg=cfg(intensity_norm="image")))
    pc = PredictConfig(tile=32, device="cpu", amp=False)
    a = run(predict_stack(model, img, pc)).prob
    b = run(predict_stack(model, img * 7.0 + 100.0, pc)).prob
    assert np.allclose(a, b, atol=1e-4)


def test_channels_last_only_where_it_pays():
    import torch

    from napari_temseg.core.device import channels_last_pays, cpu_has_bf16

    cpu = torch.device("cpu")
    assert channels_last_pays(torch.device("cuda"), "instance", "auto")
    assert not channels_last_pays(cpu, "instance", "auto") and not channels_last_pays(
        cpu, "group", True
    )
    assert channels_last_pays(cpu, "batch") and channels_last_pays(cpu, "instance")  # inference
    assert not channels_last_pays(cpu, "batch", False)  # fp32 training: no gain
    assert channels_last_pays(cpu, "batch", "auto") == cpu_has_bf16()


@pytest.mark.parametrize("norm", ["instance", "group"])
def test_fit_with_per_sample_norm_layers(stack, norm):
    import torch

    img, mask = stack
    model = run(
        fit(img, mask, train_cfg=cfg(), model_cfg=ModelConfig(arch="small-unet", norm_layer=norm))
    )
    assert model.model_cfg.norm_layer == norm
    conv = next(p for p in model.net.parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert not conv.is_contiguous(memory_format=torch.channels_last)  # kept NCHW on the CPU
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.net.modules())


def test_resumed_network_goes_back_to_nchw_for_instance_norm(stack):
    import torch

    from napari_temseg.core.inference.predict import predict_slice

    img, mask = stack
    model = run(fit(img, mask, train_cfg=cfg()))
    predict_slice(
        model, img, 0, PredictConfig(device="cpu")
    )  # inference switches the net to channels_last
    conv = lambda m: next(p for p in m.net.parameters() if p.dim() == 4 and p.shape[1] > 1)  # noqa: E731
    assert conv(model).is_contiguous(memory_format=torch.channels_last)
    again = run(fit(img, mask, train_cfg=cfg(), resume=model))
    assert not conv(again).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("shape", [(2, 2), (1, 40), (12, 64)])
def test_tiny_training_image_names_the_minimum_size(shape):
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    mask.flat[::2] = 1
    with pytest.raises(InputError, match=r"is \d+ x \d+ px: .*at least 16 x 16 px"):
        run(fit(img, mask, train_cfg=cfg()))


@pytest.mark.parametrize("size,fraction", [(16, 0.01), (50, 0.01), (16, 0.85), (17, 0.05)])
def test_single_slice_split_never_leaves_an_empty_part(size, fraction):
    for shape in ((size, size + 5), (size + 5, size)):
        train, val = split_regions([(0, 0)], [shape], fraction, 0)
        assert all(min(r.shape) >= 1 for r in train + val)


def test_small_training_image_and_patch_train():
    img, mask = make_particles(shape=(16, 16), seed=4)
    model = run(fit(img, mask, train_cfg=cfg(patch=32, val_fraction=0.01)))
    assert len(model.history) == 1


def test_patch_below_the_instance_norm_minimum_is_refused(stack):
    img, mask = stack
    with pytest.raises(InputError, match="patch 16 px is too small .*use patch >= 32"):
        run(fit(img, mask, train_cfg=cfg(patch=16)))
    run(fit(img, mask, train_cfg=cfg(patch=16), model_cfg=ModelConfig(norm_layer="batch")))


def test_a_deeper_network_trains_saves_and_predicts_any_image_size(stack, tmp_path):
    """depth 5: patches must be multiples of 32 (said in the error); prediction pads any
    image size to the network's stride and returns the image's own shape."""
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.modelfile.format import load_model

    img, mask = stack
    deep = ModelConfig(base_width=4, depth=5)
    with pytest.raises(InputError, match="patch 80 px .* depth 5: use a multiple of 32"):
        run(fit(img, mask, train_cfg=cfg(patch=80), model_cfg=deep))
    model = run(fit(img, mask, train_cfg=cfg(patch=64), model_cfg=deep))
    back = load_model(model.save(tmp_path / "deep.safetensors"))
    assert back.model_cfg.levels == 5
    odd = img[:1, :, :50, :37]
    prob = run(predict_stack(back, odd, PredictConfig(tile=64, device="cpu"))).prob
    assert prob.shape[-2:] == (50, 37) and np.isfinite(prob).all()


def _progress(gen):
    """Every Progress record of a generator, driven to its end."""
    records = []
    run(gen, records.append)
    return records


def test_each_preview_says_which_slice_it_shows():
    """The slice travels in the Progress record, so a front end never has to guess it."""
    img, mask = make_fibsem((3, 1, 64, 64), seed=0)
    asked = iter([2, 0, 1, 2, 0, 1, 2, 0])
    wanted = []

    def request():
        wanted.append(next(asked))
        return img, wanted[-1]

    tc = TrainConfig(patch=32, batch=2, epochs=1, seconds=None, steps_per_epoch=4, seed=0)
    shown = [
        (p.preview_z, p.preview.shape)
        for p in _progress(fit(img, mask, train_cfg=tc, preview=request, preview_every=0.0))
        if p.preview is not None
    ]
    assert [z for z, _ in shown] == wanted and len(set(wanted)) > 1
    assert all(shape == (64, 64) for _, shape in shown)
