"""Multi-class segmentation in the core: class table, training, model file,
prediction, post-processing and metrics. Tiny images, CPU."""

import json

import numpy as np
import pytest

from napari_temseg.core.config.choices import ConfigError
from napari_temseg.core.config.classes import ClassTable, check_values, infer_k, resolve, targets
from napari_temseg.core.config.model import ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.config.train import TrainConfig
from napari_temseg.core.errors import InputError, ModelFileError
from napari_temseg.core.inference.predict import predict_stack
from napari_temseg.core.modelfile.format import load_model, read_metadata
from napari_temseg.core.progress import run
from napari_temseg.core.training.loop import fit


def three_classes(z=3, size=64, seed=0):
    """Grey background (0), bright disks (1), dark squares (2) with noise."""
    rng = np.random.default_rng(seed)
    img = np.full((z, size, size), 0.5, np.float32)
    lab = np.zeros((z, size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for zi in range(z):
        for _ in range(3):
            cy, cx = rng.integers(8, size - 8, 2)
            lab[zi][(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 1
        for _ in range(3):
            y0, x0 = rng.integers(0, size - 10, 2)
            lab[zi, y0 : y0 + 9, x0 : x0 + 9] = 2
    img[lab == 1] = 0.9
    img[lab == 2] = 0.1
    img += rng.normal(0, 0.05, img.shape).astype(np.float32)
    return img, lab


def cfg(**kw):
    base = dict(
        patch=64,
        batch=4,
        epochs=4,
        seconds=None,
        steps_per_epoch=10,
        augment="flips",
        lr=3e-3,
        seed=0,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained():
    img, lab = three_classes()
    table = ClassTable(("matrix", "disks", "squares"))
    return img, lab, run(fit(img, lab, train_cfg=cfg(), classes=table))


# --- the class table --------------------------------------------------------------------


def test_class_table_values_follow_the_binary_conventions():
    b = ClassTable()
    assert b.binary and b.out_channels == 1 and b.k == 2
    assert [b.value(c, sparse=True) for c in (0, 1)] == [2, 1]  # 2 = background, 1 = fg
    t = ClassTable(("matrix", "pores", "grains"))
    assert t.out_channels == 3 and [t.value(c, True) for c in range(3)] == [3, 1, 2]
    assert [t.value(c, False) for c in range(3)] == [0, 1, 2]
    assert t.describe(True) == "1 = pores, 2 = grains, 3 = matrix (background), 0 = unlabelled"
    assert t.class_of(3, True) == 0 and t.class_of(0, True) is None and t.class_of(2, False) == 2
    assert ClassTable.from_dict(t.to_dict()) == t
    assert t.color_dict(unsure=True)[3] == "#ffffff" and len(set(t.colors)) == 3


@pytest.mark.parametrize(
    "names, colors, match",
    [
        (("only",), (), "2..64 classes"),
        (("a", "a"), (), "differ"),
        (("a", ""), (), "non-empty"),
        (("a", "b"), ("red", "#000000"), "rrggbb"),
    ],
)
def test_bad_class_tables_are_refused(names, colors, match):
    with pytest.raises(ConfigError, match=match):
        ClassTable(names, colors)


def test_k_is_inferred_from_the_mask_values():
    assert infer_k({0, 1}, sparse=False) == 2
    assert infer_k({0, 255}, sparse=False) == 2  # 0/255 binary masks, as always
    assert infer_k({0, 1, 3}, sparse=False) == 4
    assert infer_k({0, 1, 2}, sparse=True) == 2  # 1 fg, 2 bg
    assert infer_k({0, 1, 2, 3}, sparse=True) == 3
    with pytest.raises(InputError, match="instance map"):
        infer_k({0, 500}, sparse=False)


def test_label_values_outside_the_classes_name_the_classes():
    t = ClassTable(("matrix", "pores", "grains"))
    check_values([0, 1, 2], 3, False, "mask")
    with pytest.raises(InputError, match=r"labels \[3\].*0 = matrix, 1 = pores, 2 = grains"):
        check_values([0, 3], 3, False, "mask", t)
    check_values([0, 3], 3, True, "mask")  # sparse: 3 = background


def test_targets_and_weights():
    m = np.array([[0, 1, 2, 3]], np.uint8)
    t, w = targets(m, 3, sparse=True)
    assert t.tolist() == [[0, 1, 2, 0]] and w.tolist() == [[0, 1, 1, 1]]
    t, w = targets(m[:, :3], 3, sparse=False)
    assert t.tolist() == [[0, 1, 2]] and w.tolist() == [[1, 1, 1]]


def test_resolve_the_class_options():
    assert resolve(None, None, None) is None
    assert resolve(None, 3, None).names == ("background", "class 1", "class 2")
    assert resolve(None, None, "a, b ,c").names == ("a", "b", "c")
    with pytest.raises(ConfigError, match="classes=2 but 3"):
        resolve(None, 2, ["a", "b", "c"])
    with pytest.raises(ConfigError, match="classes=2 but 3 class names"):
        TrainConfig(classes=2, class_names="a,b,c")
    assert TrainConfig(class_names=["x", "y", "z"]).class_names == "x,y,z"


# --- training ---------------------------------------------------------------------------


def test_fit_trains_k_classes_with_per_class_validation(trained):
    img, lab, model = trained
    assert model.classes.names == ("matrix", "disks", "squares")
    assert model.model_cfg.classes == 3
    assert model.model_cfg.norm_layer == "batch"  # "auto" for a K-class small-unet
    rec = model.history[-1]
    assert len(rec["val_dice_classes"]) == 3 and len(rec["val_iou_classes"]) == 3
    # val_dice is the mean over the classes other than background
    assert rec["val_dice"] == pytest.approx(np.mean(rec["val_dice_classes"][1:]), abs=1e-3)
    best = max(h["val_dice"] for h in model.history)
    assert best > 0.7, model.history  # chance (all background) gives 0
    losses = [h["loss"] for h in model.history]
    assert losses[-1] < losses[0]


def test_k_is_inferred_when_not_given():
    img, lab = three_classes(z=2, size=48)
    model = run(fit(img, lab, train_cfg=cfg(epochs=1, steps_per_epoch=1, patch=48)))
    assert model.classes.k == 3 and model.classes.names[0] == "background"


def test_sparse_multiclass_scribbles():
    img, lab = three_classes(z=2, size=48)
    scrib = np.zeros_like(lab)
    scrib[:, ::6] = np.where(lab[:, ::6] == 0, 3, lab[:, ::6])  # every 6th row, bg = K = 3
    model = run(fit(img, scrib, train_cfg=cfg(sparse=True, epochs=1, steps_per_epoch=2, patch=48)))
    assert model.classes.k == 3
    no_bg = np.where(scrib == 3, 0, scrib)
    with pytest.raises(InputError, match="'background'.*sparse scribbles need background"):
        run(fit(img, no_bg, train_cfg=cfg(sparse=True, classes=3, epochs=1, patch=48)))


def test_a_class_without_pixels_is_named():
    img, lab = three_classes(z=2, size=48)
    with pytest.raises(InputError, match="class 'grains' \\(label 3\\) has no painted pixel"):
        run(fit(img, lab, train_cfg=cfg(class_names="m,a,b,grains", epochs=1, patch=48)))


def test_class_weights_balanced_weigh_rare_classes_up():
    from napari_temseg.core.training.objectives import class_weights

    w = class_weights(np.array([900, 90, 10]), "balanced")
    assert w[0] < w[1] < w[2] and w.mean() == pytest.approx(1.0, rel=1e-5)
    assert class_weights(np.array([5, 5]), "none") is None
    img, lab = three_classes(z=2, size=48)
    run(fit(img, lab, train_cfg=cfg(class_weights="balanced", epochs=1, patch=48)))


def test_resume_with_other_classes_is_refused(trained):
    img, lab, model = trained
    with pytest.raises(InputError, match="model has 3 classes, the data has 4"):
        run(fit(img, lab, train_cfg=cfg(classes=4), resume=model))


def test_multiclass_loss_ignores_unlabelled_pixels():
    import torch

    from napari_temseg.core.training.objectives import loss_fn

    logits = torch.randn(2, 3, 8, 8)
    y = torch.randint(0, 3, (2, 1, 8, 8)).float()
    w = torch.ones(2, 1, 8, 8)
    w[:, :, :4] = 0
    for name in ("bce", "dice", "bce+dice"):
        f = loss_fn(name, 3)
        a = f(logits, y, w)
        y2 = y.clone()
        y2[:, :, :4] = (y2[:, :, :4] + 1) % 3  # change only unlabelled pixels
        assert torch.isclose(a, f(logits, y2, w)), name


# --- model file -------------------------------------------------------------------------


def test_model_file_keeps_the_class_table(trained, tmp_path):
    img, lab, model = trained
    path = model.save(tmp_path / "m.safetensors")
    meta = read_metadata(path)
    assert meta["format"] == 2 and meta["classes"]["names"] == ["matrix", "disks", "squares"]
    back = load_model(path)
    assert back.classes == model.classes and "classes=['matrix'" in repr(back)


def test_binary_model_files_stay_format_1(small_fibsem, tmp_path):
    img, mask = small_fibsem
    m = run(fit(img, mask, train_cfg=cfg(epochs=1, steps_per_epoch=1)))
    meta = read_metadata(m.save(tmp_path / "b.safetensors"))
    assert meta["format"] == 1 and meta["classes"]["names"] == ["background", "foreground"]


def test_damaged_class_tables_are_refused(trained, tmp_path):
    from napari_temseg.core.modelfile.header import check_header

    img, lab, model = trained
    meta = json.loads(json.dumps(model.metadata()))  # as read from a file
    for bad, match in (
        ({"names": ["a", "b"]}, "2 classes but model.classes = 3"),
        ({"names": "abc"}, "classes:"),
        (None, "needs a 'classes' table"),
    ):
        with pytest.raises(ModelFileError, match=match):
            check_header({**meta, "classes": bad}, "x")


# --- prediction and post-processing -----------------------------------------------------


def test_predict_writes_class_probabilities_and_ids(trained):
    img, lab, model = trained
    auto = run(predict_stack(model, img, PredictConfig(tile=64, device="cpu")))
    assert auto.prob.dtype == np.float16  # prob_dtype "auto": compact for K classes
    f32 = dict(tile=64, device="cpu", prob_dtype="float32")
    res = run(predict_stack(model, img, PredictConfig(**f32)))
    assert res.prob.shape == (3, 3, 64, 64) and res.labels.shape == (3, 64, 64)
    np.testing.assert_allclose(auto.prob, res.prob, atol=1e-3)
    np.testing.assert_allclose(res.prob.sum(1), 1.0, atol=1e-4)
    assert np.array_equal(res.labels, res.prob.argmax(1))
    assert (res.labels == lab).mean() > 0.85
    unsure = run(predict_stack(model, img, PredictConfig(**f32, min_confidence=0.9)))
    assert (unsure.labels == 3).any()
    assert np.all(unsure.prob.max(1)[unsure.labels == 3] < 0.9)


def test_predict_k_classes_is_tile_consistent_and_has_uncertainty(trained):
    img, lab, model = trained
    a = run(predict_stack(model, img[:1], PredictConfig(tile=64, device="cpu")))
    b = run(predict_stack(model, img[:1], PredictConfig(tile=32, overlap=0.5, device="cpu")))
    assert a.prob.shape == b.prob.shape == (1, 3, 64, 64)
    u = run(
        predict_stack(
            model, img[:1], PredictConfig(tile=64, device="cpu", tta=True, uncertainty=True)
        )
    )
    assert u.uncertainty.shape == (1, 64, 64) and u.uncertainty.min() >= 0
    assert u.uncertainty.max() <= 0.25 + 1e-6
    with pytest.raises(InputError, match="instance labels are for binary models"):
        run(predict_stack(model, img, PredictConfig(instances=True, device="cpu")))


def test_predict_dask_k_classes_matches_predict_stack(trained, tmp_path):
    """Distributed prediction of a K-class model: (Z, K, Y, X) probabilities and class ids
    (with the confidence floor), equal to the streamed predictor's, from a model file."""
    import dask.array as da

    from napari_temseg.core.inference.distributed import predict_dask
    from napari_temseg.core.modelfile.format import save_model

    img, _, model = trained
    save_model(model, tmp_path / "k.safetensors")
    pc = PredictConfig(tile=32, device="cpu", prob_dtype="float32", min_confidence=0.6)
    ref = run(predict_stack(model, img, pc))
    res = predict_dask(
        tmp_path / "k.safetensors",
        da.from_array(img, chunks=(2, 64, 64)),
        tmp_path / "p.zarr",
        pc,
        labels_zarr_path=tmp_path / "l.zarr",
    )
    assert res.prob.shape == (3, 3, 64, 64) and res.labels.shape == (3, 64, 64)
    np.testing.assert_allclose(res.prob[:], ref.prob, atol=1e-6)
    np.testing.assert_array_equal(res.labels[:], ref.labels)
    assert (ref.labels == 3).any()  # the floor marked some pixels unsure
    auto = predict_dask(model, img, tmp_path / "a.zarr", PredictConfig(tile=32, device="cpu"))
    assert auto.prob.dtype == np.float16  # compact by default, as predict_stack


def test_class_labels_post_processing():
    from napari_temseg.core.inference.postprocess import class_labels

    p = np.zeros((3, 12, 12), np.float32)
    p[0] = 1
    p[:, 2:9, 2:9] = [[[0.0]], [[1.0]], [[0.0]]]  # a 7x7 class-1 block
    p[:, 4:6, 4:6] = [[[1.0]], [[0.0]], [[0.0]]]  # a background hole in it
    p[:, 10, 10] = [0.0, 0.0, 1.0]  # a 1-px class-2 speck
    lab = class_labels(p, fill_holes=True, min_size=2)
    assert lab[5, 5] == 1 and lab[10, 10] == 0 and lab[0, 0] == 0
    q = (p * 255).astype(np.uint8)
    q[:, 0, 0] = [100, 90, 65]  # top class at 39 %
    assert class_labels(q, min_confidence=0.5)[0, 0] == 3
    assert class_labels(q)[0, 0] == 0


# --- metrics ----------------------------------------------------------------------------


def test_confusion_and_class_scores():
    from napari_temseg.core.evaluation.metrics import class_scores, confusion, evaluate_classes

    truth = np.array([[0, 0, 1, 1, 2, 2]])
    pred = np.array([[0, 1, 1, 1, 2, 3]])  # one bg->1 error, one 2->unsure
    m = confusion(pred, truth, 3)
    assert m.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1]]
    s = class_scores(m, ["bg", "a", "b"])
    a, b = s["classes"][1], s["classes"][2]
    assert a["precision"] == pytest.approx(2 / 3) and a["recall"] == 1.0
    assert b["recall"] == 0.5 and b["precision"] == 1.0
    assert s["mean_iou_fg"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert s["mean_iou"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    ev = evaluate_classes(np.stack([pred, truth]), np.stack([truth, truth]), ["bg", "a", "b"])
    assert ev["per_slice"][1]["mean_iou"] == 1.0 and len(ev["confusion"]) == 3
    assert ev["per_slice"][0]["share a"] == pytest.approx(3 / 6)
    with pytest.raises(InputError, match="ground truth has label 5"):
        evaluate_classes(pred, truth + 3, ["bg", "a", "b"])


def test_class_fractions_per_slice():
    from napari_temseg.core.evaluation.metrics import class_fractions

    lab = np.array([[[0, 1], [1, 2]], [[0, 0], [0, 0]]])
    rows = class_fractions(lab, ["m", "p", "g"])
    assert rows[0] == {"slice": 0, "m": 0.25, "p": 0.5, "g": 0.25}
    assert rows[1]["m"] == 1.0 and rows[-1]["slice"] == "all" and rows[-1]["m"] == 0.625


def test_model_config_classes_is_derived_from_the_table():
    with pytest.raises(ModelFileError, match="3 classes but the network has 1"):
        from napari_temseg.core.config.model import InputSpec
        from napari_temseg.core.modelfile.format import TrainedModel

        TrainedModel(None, ModelConfig(), InputSpec(), classes=ClassTable(("a", "b", "c")))


# --- console API ------------------------------------------------------------------------


def test_api_k_classes_end_to_end(trained, capsys):
    from napari_temseg import api

    img, lab, model = trained
    prob, labels = api.predict(model, img, tile=64, device="cpu", verbose=False)
    assert prob.shape == (3, 3, 64, 64) and prob.dtype == np.float16
    assert labels.shape == (3, 64, 64) and labels.max() <= 2
    res = api.evaluate(labels, lab, classes=model)
    out = capsys.readouterr().out
    assert "mean IoU" in out and "disks" in out and "confusion matrix" in out
    assert res["overall"]["mean_iou_fg"] > 0.5
    rows = api.class_fractions(labels, classes=["m", "d", "s"])
    assert rows[-1]["slice"] == "all" and sum(rows[-1][n] for n in "mds") == pytest.approx(1.0)
    prob2d, lab2d = api.predict(model, img[0], tile=64, device="cpu", verbose=False)
    assert prob2d.shape == (3, 64, 64) and lab2d.shape == (64, 64)


def test_api_train_takes_class_names(capsys):
    from napari_temseg import api

    img, lab = three_classes(z=2, size=48)
    opts = dict(epochs=1, seconds=None, steps_per_epoch=1, patch=48, device="cpu")
    model = api.train(img, lab, class_names=["bg", "a", "b"], verbose=False, **opts)
    assert model.classes.names == ("bg", "a", "b")
    with pytest.raises(ConfigError, match="classes=4 but 3 class names"):
        api.train(img, lab, classes=4, class_names="bg,a,b", verbose=False, **opts)


def test_auto_learning_rate_by_kind_of_model(monkeypatch):
    """lr 'auto': 1e-3 for binary models (as before), 3e-3 for K classes (faster in every
    multi-class race, docs/experiments/); a given lr always wins."""
    import torch

    from napari_temseg.core.config.train import learning_rate

    seen = []
    real = torch.optim.AdamW

    def recording(params, lr, **kw):
        seen.append(lr)
        return real(params, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", recording)
    img, lab = three_classes(z=2)
    tiny = dict(epochs=1, steps_per_epoch=1, lr=None)
    run(fit(img, lab, train_cfg=cfg(**tiny)))
    run(fit(img, (lab == 1).astype(np.uint8), train_cfg=cfg(**tiny)))
    run(fit(img, lab, train_cfg=cfg(epochs=1, steps_per_epoch=1, lr=5e-4)))
    assert seen == [3e-3, 1e-3, 5e-4]
    assert TrainConfig().lr is None and learning_rate(TrainConfig(), binary=True) == 1e-3
