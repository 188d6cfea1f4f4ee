"""`temseg train`, `temseg demo` and the CLI frame (help, errors as one line)."""

import re

import numpy as np
import tifffile

from napari_temseg.cli import main
from napari_temseg.core.data.synthetic.fibsem import make_fibsem
from napari_temseg.core.data.synthetic.particles import make_particles
from napari_temseg.core.modelfile.format import load_model


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("doctor", "demo", "train", "predict", "evaluate"):
        assert cmd in out


def test_train_stack_from_tiff(tmp_path, capsys):
    img, mask = make_fibsem(shape=(3, 2, 64, 64), seed=0)
    tifffile.imwrite(tmp_path / "img.tif", img)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    out = tmp_path / "m.safetensors"
    argv = [
        "train",
        str(tmp_path / "img.tif"),
        str(tmp_path / "mask.tif"),
        "-o",
        str(out),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "4",
        "--patch",
        "64",
        "--context",
        "1",
        "--channel-axis",
        "1",
        "--augment",
        "flips",
        "-q",
    ]
    assert main(argv) == 0
    model = load_model(out)
    assert model.input_spec.channels == 2 and model.input_spec.context == 1
    captured = capsys.readouterr()
    assert "best validation Dice" in captured.out
    first = captured.err.splitlines()[0]  # where it trains and in which precision
    assert first.startswith("training on cpu, ") and ("fp32" in first or "bf16" in first)
    assert model.history[-1]["precision"] in ("fp32", "bf16")
    assert main(argv) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite", "--resume", str(out)]) == 0
    assert len(load_model(out).history) == 2


def test_train_folder_of_micrographs(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    for i, shape in enumerate([(64, 80), (72, 64)]):
        im, m = make_particles(shape=shape, seed=i)
        Image.fromarray((im.clip(0, 1) * 255).astype(np.uint8)).save(tmp_path / "img" / f"p{i}.png")
        Image.fromarray(m).save(tmp_path / "msk" / f"p{i}.png")
    out = tmp_path / "p.safetensors"
    assert (
        main(
            [
                "train",
                str(tmp_path / "img"),
                str(tmp_path / "msk"),
                "-o",
                str(out),
                "--epochs",
                "1",
                "--steps-per-epoch",
                "4",
                "--patch",
                "64",
                "-q",
            ]
        )
        == 0
    )
    assert load_model(out).input_spec.channels == 1
    assert load_model(out).model_cfg.norm_layer == "instance"  # the default small-unet
    assert (
        main(
            [
                "train",
                str(tmp_path / "img"),
                str(tmp_path / "msk"),
                "-o",
                str(out),
                "--epochs",
                "1",
                "--steps-per-epoch",
                "2",
                "--patch",
                "64",
                "-q",
                "--norm",
                "batch",
                "--overwrite",
            ]
        )
        == 0
    )
    assert load_model(out).model_cfg.norm_layer == "batch"


def test_bad_input_is_one_line_error(tmp_path, capsys):
    img, mask = make_particles(shape=(64, 64), seed=0)
    tifffile.imwrite(tmp_path / "img.tif", img)
    tifffile.imwrite(tmp_path / "mask.tif", mask[:32])
    rc = main(
        [
            "train",
            str(tmp_path / "img.tif"),
            str(tmp_path / "mask.tif"),
            "-o",
            str(tmp_path / "m.safetensors"),
            "--epochs",
            "1",
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "does not match the image" in err and "Traceback" not in err


def test_demo_end_to_end(tmp_path, capsys):
    """`temseg demo --seconds 20`: real training + tiled prediction on unseen synthetic slices.

    Bound: predicting every pixel as foreground scores Dice 2f/(1+f) (f = foreground fraction,
    about 0.18 here, so ~0.31), and a random guess at rate f scores ~f. We require Dice > 0.55
    (and >= the all-foreground score + 0.2): far above either baseline, and reached in 20 s of
    CPU training even on a loaded 2-core machine (0.70-0.88 measured; 0.5 under load 8).
    """
    out = tmp_path / "demo"
    assert main(["demo", "--seconds", "20", "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    dice = float(re.search(r"Dice ([0-9.]+)", text).group(1))
    truth = tifffile.imread(out / "truth.tif")
    f = truth.mean()
    assert dice > max(0.55, 2 * f / (1 + f) + 0.2), (dice, f)
    labels, prob = tifffile.imread(out / "labels.tif"), tifffile.imread(out / "probability.tif")
    assert labels.shape == truth.shape and prob.shape == truth.shape
    assert prob.min() >= 0 and prob.max() <= 1
    assert load_model(out / "model.safetensors").input_spec.context == 1
    assert (
        main(["demo", "--seconds", "5", "--out", str(out), "-q"]) == 2
    )  # never overwrites silently


def _tiny_set(tmp_path):
    img, mask = make_fibsem(shape=(2, 1, 64, 64), seed=3)
    tifffile.imwrite(tmp_path / "img.tif", img[:, 0])
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    return [str(tmp_path / "img.tif"), str(tmp_path / "mask.tif")]


FAST = ["--epochs", "1", "--steps-per-epoch", "2", "--patch", "32", "--base-width", "4", "-q"]


def test_bad_outputs_are_refused_before_training(tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    from napari_temseg.core.training import loop as train

    def no_training(*a, **k):
        raise AssertionError("training started although the output was unusable")

    monkeypatch.setattr(train, "fit", no_training)
    data = _tiny_set(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "folder.safetensors").mkdir()
    cases = {
        str(tmp_path / "model.pt"): "model files end in .safetensors",
        str(tmp_path / "notes.txt" / "m.safetensors"): "is a file, not a folder",
        str(tmp_path / "folder.safetensors"): "is a folder: give a file name",
    }
    for out, message in cases.items():
        assert main(["train", *data, "-o", out, *FAST]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    real = tempfile.mkstemp

    def read_only(*a, dir=None, **k):
        if dir is not None and str(dir).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*a, dir=dir, **k)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert main(["train", *data, "-o", str(tmp_path / "ro" / "new" / "m.safetensors"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "cannot save into" in err and "Read-only file system" in err
    assert not (tmp_path / "ro" / "new").exists()


def test_a_failed_save_keeps_the_model_elsewhere(tmp_path, capsys, monkeypatch):
    """The disk fills up during training: the safetensors writer's own error is caught,
    the model goes to the rescue folder, the message says why and where."""
    from safetensors import SafetensorError

    from napari_temseg.core.modelfile import save

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    real = save.write_file
    target = tmp_path / "out" / "m.safetensors"

    def disk_full(tensors, filename, metadata):
        if str(filename).startswith(str(target.parent)):
            raise SafetensorError("Error while serializing: I/O error: No space left on device")
        return real(tensors, filename, metadata)

    monkeypatch.setattr(save, "write_file", disk_full)
    assert main(["train", *_tiny_set(tmp_path), "-o", str(target), *FAST]) == 1
    err = capsys.readouterr().err
    assert f"cannot save '{target}': the disk is full" in err and "Traceback" not in err
    rescued = list((tmp_path / "home" / "napari-temseg-rescued").glob("m-*.safetensors"))
    assert len(rescued) == 1 and f"saved to '{rescued[0]}' instead" in err
    assert load_model(rescued[0]).model_cfg.base_width == 4
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_a_model_no_folder_takes_is_reported_lost(tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    from napari_temseg.core.modelfile import save

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    (tmp_path / "systmp").mkdir()
    data = _tiny_set(tmp_path)

    def read_only(tensors, filename, metadata):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(save, "write_file", read_only)
    assert main(["train", *data, "-o", str(tmp_path / "m.safetensors"), *FAST]) == 1
    err = capsys.readouterr().err
    assert "the drive is read-only" in err and "no rescue folder" in err
    assert "lost when temseg exits" in err and "Traceback" not in err


def test_a_drive_too_full_for_the_model_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import shutil

    from napari_temseg.core.training import loop as train

    def no_training(*a, **k):
        raise AssertionError("training started although the drive is too full")

    monkeypatch.setattr(train, "fit", no_training)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=100_000))
    out = tmp_path / "m.safetensors"
    assert main(["train", *_tiny_set(tmp_path), "-o", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"cannot save '{out}': its drive has 0.1 MB free and the model needs about" in err
    assert "free some space or choose another folder" in err and not out.exists()


def test_a_class_painted_only_in_the_validation_part_is_warned(tmp_path, capsys):
    """One slice: the right band is held out for validation; all foreground is there."""
    img, _ = make_fibsem(shape=(1, 1, 64, 64), seed=3)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:50, 55:61] = 1
    tifffile.imwrite(tmp_path / "img.tif", img[0, 0])
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    out = tmp_path / "m.safetensors"
    argv = ["train", str(tmp_path / "img.tif"), str(tmp_path / "mask.tif"), "-o", str(out)]
    assert main([*argv, *FAST]) == 0
    err = capsys.readouterr().err
    assert "WARNING: the training part of the data has no painted pixel of 'foreground'" in err
    assert "Paint it on more slices" in err
    mask[10:50, 55:61], mask[10:50, 5:11] = 0, 1  # painted in the training part: no warning
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    assert main([*argv, "--overwrite", *FAST]) == 0
    assert "WARNING" not in capsys.readouterr().err


def test_ctrl_c_stops_training_and_saves_the_best_model(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "m.safetensors"
    argv = [
        sys.executable,
        "-m",
        "napari_temseg.cli",
        "train",
        *_tiny_set(tmp_path),
        "-o",
        str(out),
        "--seconds",
        "600",
        "--steps-per-epoch",
        "2",
        "--patch",
        "32",
        "--base-width",
        "4",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait until a few epochs have been validated
        line = proc.stderr.readline()
        lines.append(line)
        epoch = re.search(r"epoch (\d+)", line)
        if not line or (epoch and int(epoch.group(1)) >= 3):
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=240)[1]
    assert proc.returncode == 0, "".join(lines) + rest
    assert "stopped early" in rest and out.is_file()
    model = load_model(out)
    assert model.history and model.train_cfg.seconds == 600


def test_out_of_memory_after_an_epoch_saves_the_best_and_fails(tmp_path, capsys, monkeypatch):
    import torch

    from napari_temseg.core.training import loop

    img, mask = make_fibsem(shape=(5, 1, 64, 64), seed=0)
    tifffile.imwrite(tmp_path / "img.tif", img)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    real, calls = loop._Session.forward, []

    def forward(self, b):  # the first epoch fits, then nothing does
        calls.append(1)
        if len(calls) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(self, b)

    monkeypatch.setattr(loop._Session, "forward", forward)
    out = tmp_path / "m.safetensors"
    argv = ["train", str(tmp_path / "img.tif"), str(tmp_path / "mask.tif"), "-o", str(out)]
    argv += ["--epochs", "3", "--steps-per-epoch", "2", "--patch", "64", "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "temseg train: stopped early: out of memory" in err and "lower the batch" in err
    assert len(load_model(out).history) == 1
