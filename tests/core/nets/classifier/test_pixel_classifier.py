"""The pixel classifier as a model kind: fit -> predict -> file, like a U-Net."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")

from napari_temseg.core.config.model import ModelConfig  # noqa: E402
from napari_temseg.core.config.predict import PredictConfig  # noqa: E402
from napari_temseg.core.config.train import TrainConfig  # noqa: E402
from napari_temseg.core.data.synthetic import make_phases  # noqa: E402
from napari_temseg.core.errors import InputError, ModelFileError  # noqa: E402
from napari_temseg.core.inference.predict import predict_stack  # noqa: E402
from napari_temseg.core.modelfile.format import load_model  # noqa: E402
from napari_temseg.core.progress import StopToken, run  # noqa: E402
from napari_temseg.core.training import fit  # noqa: E402

CLF = ModelConfig(arch="pixel-classifier")


@pytest.fixture(scope="module")
def phases():
    return make_phases((3, 128, 128), channels=2, seed=3)


def _scribbles(lab, k, every=5):
    """Sparse labels on a grid of dots of slice 0 (K = background, as painted)."""
    m = np.zeros_like(lab)
    dots = lab[0, ::every, ::every]
    m[0, ::every, ::every] = np.where(dots == 0, k, dots)
    return m


def _predict(model, img, **kw):
    k = model.classes.k
    prob = np.zeros((img.shape[0], *(() if k == 2 else (k,)), *img.shape[2:]), np.float32)
    run(predict_stack(model, img, PredictConfig(device="cpu", **kw), prob_out=prob, channel_axis=1))
    return prob


@pytest.fixture(scope="module")
def model(phases):
    img, lab = phases
    k = int(lab.max()) + 1
    cfg = TrainConfig(sparse=True, device="cpu", val_fraction=0.0)
    return run(fit(img, _scribbles(lab, k), model_cfg=CLF, train_cfg=cfg, channel_axis=1))


def test_scribbles_of_k_classes_segment_unseen_slices(phases, model):
    img, lab = phases
    assert model.model_cfg.arch == "pixel-classifier" and model.classes.k == lab.max() + 1
    prob = _predict(model, img)
    np.testing.assert_allclose(prob.sum(1), 1, atol=1e-4)  # log-probs -> softmax is exact
    assert (prob[1:].argmax(1) == lab[1:]).mean() > 0.85


def test_binary_dense_masks_give_one_probability(phases):
    img, lab = phases
    mask = np.zeros_like(lab)
    mask[0] = lab[0] == 1
    cfg = TrainConfig(device="cpu", val_fraction=0.3)
    m = run(fit(img, mask, model_cfg=CLF, train_cfg=cfg, channel_axis=1, annotated=[0]))
    assert m.classes.k == 2 and m.model_cfg.classes == 1
    assert m.history[-1]["val_dice"] > 0.6  # held-out band of slice 0, through validate()
    prob = _predict(m, img)
    assert prob.shape == (3, 128, 128)
    assert ((prob[1:] > 0.5) == (lab[1:] == 1)).mean() > 0.85


def test_file_round_trip_predicts_the_same(phases, model, tmp_path):
    img, _ = phases
    path = model.save(tmp_path / "clf.safetensors")
    again = load_model(path)
    assert again.model_cfg.arch == "pixel-classifier"
    np.testing.assert_array_equal(_predict(again, img), _predict(model, img))


def test_loading_a_classifier_file_runs_no_unpickling(model, tmp_path, monkeypatch):
    import pickle

    path = model.save(tmp_path / "clf.safetensors")

    def refuse(*a, **k):
        raise AssertionError("unpickling while loading a model file")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    assert load_model(path).net.trained


def test_trees_of_an_unknown_kind_are_refused_in_one_line(model, tmp_path):
    from safetensors.torch import load_file, save_file

    from napari_temseg.core.modelfile.format import META_KEY, read_metadata

    path = model.save(tmp_path / "clf.safetensors")
    meta = read_metadata(path)
    tensors = load_file(str(path))
    tensors["forest"] = torch.frombuffer(bytearray(b"pickle\n\x80\x04evil"), dtype=torch.uint8)
    import json

    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(ModelFileError, match="unknown kind"):
        bad = load_model(tmp_path / "bad.safetensors")
        bad.net.trees()


def test_tiles_do_not_change_the_answer_much(phases, model):
    img, _ = phases
    whole = _predict(model, img, tile=128)
    tiled = _predict(model, img, tile=64, overlap=0.5)
    assert (whole.argmax(1) == tiled.argmax(1)).mean() > 0.97


def test_one_painted_class_says_what_to_paint(phases):
    img, lab = phases
    mask = np.zeros_like(lab)
    mask[0, 10:20, 10:20] = 1
    cfg = TrainConfig(sparse=True, device="cpu", val_fraction=0.0)
    with pytest.raises(InputError, match="at least two classes|background"):
        run(fit(img, mask, model_cfg=CLF, train_cfg=cfg, channel_axis=1))


def test_a_stop_before_any_pixel_is_read_is_said(phases):
    img, lab = phases
    stop = StopToken()
    stop.request()
    cfg = TrainConfig(sparse=True, device="cpu", val_fraction=0.0)
    with pytest.raises(InputError, match="stopped"):
        run(fit(img, _scribbles(lab, 4), model_cfg=CLF, train_cfg=cfg, channel_axis=1, stop=stop))
