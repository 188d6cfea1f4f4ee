"""`temseg train / predict / evaluate / demo` with K classes."""

import json

import numpy as np
import pytest
import tifffile

from napari_temseg.cli import main
from napari_temseg.core.data.synthetic.phases import make_phases
from napari_temseg.core.modelfile.format import load_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mc")
    img, lab = make_phases((3, 64, 64), seed=1)
    tifffile.imwrite(d / "img.tif", img)
    tifffile.imwrite(d / "lab.tif", lab)
    out = d / "m.safetensors"
    argv = ["train", str(d / "img.tif"), str(d / "lab.tif"), "-o", str(out)]
    argv += ["--channel-axis", "1", "--epochs", "1", "--steps-per-epoch", "3", "--patch", "64"]
    argv += ["--class-names", "matrix,pores,grains,hydrates", "--augment", "flips", "-q"]
    assert main(argv) == 0
    return d, img, lab, out


def test_train_k_classes_from_the_cli(files, capsys):
    d, img, lab, out = files
    model = load_model(out)
    assert model.classes.names == ("matrix", "pores", "grains", "hydrates")
    assert model.model_cfg.classes == 4


def test_train_infers_k_and_says_so(files, tmp_path, capsys):
    d, img, lab, out = files
    argv = ["train", str(d / "img.tif"), str(d / "lab.tif"), "-o", str(tmp_path / "a.safetensors")]
    argv += ["--channel-axis", "1", "--epochs", "1", "--steps-per-epoch", "1", "--patch", "64"]
    assert main(argv + ["-q"]) == 0
    text = capsys.readouterr().out
    assert "4 classes; mask labels: 0 = background, 1 = class 1" in text
    assert "validation Dice per class" in text


def test_predict_and_evaluate_k_classes(files, tmp_path, capsys):
    d, img, lab, out = files
    prob, labels = tmp_path / "p.tif", tmp_path / "l.tif"
    argv = ["predict", str(out), str(d / "img.tif"), "-o", str(prob), "--labels", str(labels)]
    assert main(argv + ["--channel-axis", "1", "--tile", "64", "-q"]) == 0
    assert "class ids: 0 = matrix, 1 = pores" in capsys.readouterr().err
    p, lab_out = tifffile.imread(prob), tifffile.imread(labels)
    assert p.shape == (3, 4, 64, 64) and p.dtype == np.float16
    # labels come from the float32 probabilities: float16 rounding may flip near-ties only
    assert lab_out.shape == (3, 64, 64) and np.mean(lab_out == p.argmax(1)) > 0.99
    assert main(["evaluate", str(labels), str(d / "lab.tif"), "--model", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mean IoU" in text and "confusion matrix" in text and "hydrates" in text
    assert main(["evaluate", str(labels), str(d / "lab.tif"), "--classes", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["confusion"]) == 4 and len(res["overall"]["classes"]) == 4
    assert len(res["per_slice"]) == 3


def test_multiclass_bad_input_is_one_line(files, tmp_path, capsys):
    d, img, lab, out = files
    prob = tmp_path / "p.tif"
    argv = ["predict", str(out), str(d / "img.tif"), "-o", str(prob), "--channel-axis", "1"]
    assert main(argv + ["--instances"]) == 2
    err = capsys.readouterr().err
    assert "instance labels are for binary models" in err and "--instances" in err
    assert not prob.exists()
    bad = tmp_path / "bad.tif"
    tifffile.imwrite(bad, (lab + 1).astype(np.uint8))  # label 4 in a 4-class evaluation
    assert main(["evaluate", str(bad), str(d / "lab.tif"), "--model", str(out)]) == 0
    assert main(["evaluate", str(d / "lab.tif"), str(bad), "--model", str(out)]) == 2
    assert "ground truth has label 4" in capsys.readouterr().err
    argv = ["train", str(d / "img.tif"), str(d / "lab.tif"), "-o", str(tmp_path / "x.safetensors")]
    assert main(argv + ["--channel-axis", "1", "--classes", "3", "--epochs", "1", "-q"]) == 2
    assert "outside the label set" in capsys.readouterr().err


def test_demo_classes(tmp_path, capsys):
    argv = ["demo", "--classes", "--out", str(tmp_path / "d"), "--seconds", "3", "--slices", "5"]
    assert main(argv + ["--size", "64", "-q"]) == 0
    text = capsys.readouterr().out
    assert "mean IoU" in text and "unhydrated grains" in text
    assert load_model(tmp_path / "d" / "model.safetensors").classes.k == 4


def test_an_absent_class_is_null_in_the_file_and_a_dash_in_the_summary(files, tmp_path):
    from napari_temseg.cli.train import class_summary

    d, img, lab, out = files
    model = load_model(out)
    model.history = [{"epoch": 1, "step": 3, "loss": 0.5, "val_dice": 0.5}]
    model.history[0]["val_dice_classes"] = [0.9, None, 0.25, 0.5]
    path = model.save(tmp_path / "absent.safetensors")
    again = load_model(path)
    assert again.history[0]["val_dice_classes"] == [0.9, None, 0.25, 0.5]  # JSON null
    text = class_summary(again, sparse=False)
    assert "per class (epoch 1): matrix 0.900, pores -, grains 0.250, hydrates 0.500" in text
