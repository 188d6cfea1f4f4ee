"""`temseg train --arch pixel-classifier`: trains in seconds, predicts, refuses export."""

import numpy as np
import tifffile

from napari_temseg.cli import main
from napari_temseg.core.data.synthetic import make_phases
from napari_temseg.core.modelfile.format import load_model


def test_train_predict_and_export_refusal(tmp_path, capsys):
    img, lab = make_phases((3, 96, 96), channels=1, seed=1)
    k = int(lab.max()) + 1
    mask = np.zeros_like(lab)
    dots = lab[0, ::4, ::4]
    mask[0, ::4, ::4] = np.where(dots == 0, k, dots)  # scribbles: K = background
    tifffile.imwrite(tmp_path / "img.tif", img[:, 0])
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    model = tmp_path / "clf.safetensors"
    argv = ["train", str(tmp_path / "img.tif"), str(tmp_path / "mask.tif"), "-o", str(model)]
    assert main([*argv, "--arch", "pixel-classifier", "--sparse", "--device", "cpu"]) == 0
    assert load_model(model).model_cfg.arch == "pixel-classifier"
    out = tmp_path / "prob.tif"
    assert main(["predict", str(model), str(tmp_path / "img.tif"), "-o", str(out)]) == 0
    prob = tifffile.imread(out)
    assert prob.shape == (3, k, 96, 96)
    assert (prob[1:].argmax(1) == lab[1:]).mean() > 0.8
    capsys.readouterr()
    assert main(["export", str(model), "-o", str(tmp_path / "clf.onnx")]) != 0
    err = capsys.readouterr().err
    assert "pixel-classifier" in err and ".safetensors" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "clf.onnx").exists()


def test_train_a_taught_unet_prints_which_model_it_saved(tmp_path, capsys):
    img, lab = make_phases((2, 96, 96), channels=1, seed=2)
    k = int(lab.max()) + 1
    mask = np.zeros_like(lab)
    mask[:, ::6, ::6] = np.where(lab[:, ::6, ::6] == 0, k, lab[:, ::6, ::6])
    tifffile.imwrite(tmp_path / "img.tif", img[:, 0])
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    model = tmp_path / "taught.safetensors"
    argv = ["train", str(tmp_path / "img.tif"), str(tmp_path / "mask.tif"), "-o", str(model)]
    opts = ["--sparse", "--device", "cpu", "--teacher", "pixel-classifier", "--epochs", "1"]
    opts += ["--steps-per-epoch", "2", "--patch", "64", "--base-width", "4"]
    opts += ["--val-fraction", "0.5", "--seconds", "none"]
    assert main([*argv, *opts]) == 0
    out = capsys.readouterr().out
    saved = load_model(model).model_cfg.arch
    assert ("it is the model kept" in out) == (saved == "pixel-classifier")
    assert ("is kept over its teacher" in out) == (saved == "small-unet")
