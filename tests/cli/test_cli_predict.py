import json

import numpy as np
import pytest
import tifffile
import torch

from napari_temseg.cli import main
from napari_temseg.core.config.model import InputSpec, ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.data.read import read_image
from napari_temseg.core.inference.predict import predict_stack
from napari_temseg.core.modelfile.format import TrainedModel, load_model, save_model
from napari_temseg.core.progress import run


@pytest.fixture
def model_path(tmp_path):
    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="small-unet", base_width=4, in_channels=2)
    spec = InputSpec(channels=2, norm_lo=(0.0, 10.0), norm_hi=(255.0, 200.0))
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    path = tmp_path / "m.safetensors"
    save_model(TrainedModel(net=net, model_cfg=cfg, input_spec=spec, threshold=0.5), path)
    return path


@pytest.fixture
def stack(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (3, 2, 40, 52), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", img)
    return tmp_path / "stack.tif", img


def _api(model_path, img, channel_axis=None, **kw):
    cfg = PredictConfig(device="cpu", tile=32, amp=False, **kw)
    return run(predict_stack(load_model(model_path), img, cfg, channel_axis=channel_axis))


def test_predict_tif_and_zarr_match_the_api(tmp_path, model_path, stack, capsys):
    path, img = stack
    rc = main(
        [
            "predict",
            str(model_path),
            str(path),
            "-o",
            str(tmp_path / "p.tif"),
            "--labels",
            str(tmp_path / "l.zarr"),
            "--tile",
            "32",
            "--device",
            "cpu",
            "--no-amp",
            "-q",
        ]
    )
    assert rc == 0
    ref = _api(model_path, img)
    np.testing.assert_allclose(read_image(tmp_path / "p.tif"), ref.prob, atol=1e-6)
    np.testing.assert_array_equal(read_image(tmp_path / "l.zarr")[:], ref.labels)
    assert "3/3 slice(s)" in capsys.readouterr().err


def test_predict_refuses_to_overwrite(tmp_path, model_path, stack, capsys):
    path, _ = stack
    out = tmp_path / "p.zarr"
    args = [
        "predict",
        str(model_path),
        str(path),
        "-o",
        str(out),
        "--tile",
        "32",
        "--device",
        "cpu",
        "--no-amp",
        "--prob-dtype",
        "uint8",
        "-q",
    ]
    assert main(args) == 0
    before = read_image(out)[:].copy()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    np.testing.assert_array_equal(read_image(out)[:], before)
    assert main(args + ["--overwrite"]) == 0


def test_predict_folder_of_images(tmp_path, model_path):
    from PIL import Image

    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(1)
    sizes = {"a": (30, 41), "b": (50, 20)}
    for name, shape in sizes.items():  # RGB-less 2-channel images: stored as (Y, X, 2) TIFF
        tifffile.imwrite(src / f"{name}.tif", rng.integers(0, 255, (2,) + shape, dtype=np.uint8))
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(src / "notes.png")
    (src / "notes.png").unlink()
    rc = main(
        [
            "predict",
            str(model_path),
            str(src),
            "-o",
            str(tmp_path / "out"),
            "--labels",
            str(tmp_path / "lab"),
            "--tile",
            "32",
            "--device",
            "cpu",
            "--no-amp",
            "--channel-axis",
            "0",
            "-q",
        ]
    )
    assert rc == 0
    for name, shape in sizes.items():
        prob = read_image(tmp_path / "out" / f"{name}.tif")
        assert prob.shape == shape
        ref = _api(model_path, tifffile.imread(src / f"{name}.tif"), channel_axis=0)
        np.testing.assert_allclose(prob, ref.prob[0], atol=1e-6)
        np.testing.assert_array_equal(read_image(tmp_path / "lab" / f"{name}.tif"), ref.labels[0])


def test_predict_bad_inputs_are_one_line_errors(tmp_path, model_path, stack, capsys):
    path, _ = stack
    assert (
        main(
            [
                "predict",
                str(tmp_path / "none.safetensors"),
                str(path),
                "-o",
                str(tmp_path / "p.tif"),
            ]
        )
        == 2
    )
    assert main(["predict", str(model_path), str(path), "-o", str(tmp_path / "p.png")]) == 2
    assert (
        main(
            ["predict", str(model_path), str(path), "-o", str(tmp_path / "p.tif"), "--uncertainty"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "not found" in err and ".tif, .tiff or .zarr" in err and "turn on tta" in err
    assert "Traceback" not in err


def test_uncertainty_goes_beside_the_probability(tmp_path, model_path, stack):
    path, img = stack
    out = tmp_path / "p.tif"
    assert (
        main(
            [
                "predict",
                str(model_path),
                str(path),
                "-o",
                str(out),
                "--tta",
                "--uncertainty",
                "--channel-axis",
                "1",
                "--tile",
                "32",
                "--no-amp",
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    ref = _api(model_path, img, channel_axis=1, tta=True, uncertainty=True)
    np.testing.assert_allclose(
        read_image(tmp_path / "p-uncertainty.tif"), ref.uncertainty, atol=1e-6
    )
    assert (
        main(["predict", str(model_path), str(path), "-o", str(out), "--tta", "--uncertainty"]) == 2
    )


def _dice(p, t):
    p, t = p > 0, t > 0
    return 2 * (p & t).sum() / (p.sum() + t.sum())


def test_evaluate_json_and_table(tmp_path, capsys):
    rng = np.random.default_rng(2)
    truth = (rng.random((3, 20, 30)) > 0.6).astype(np.uint8)
    prob = np.clip(truth * 0.7 + rng.random(truth.shape) * 0.5, 0, 1).astype(np.float32)
    tifffile.imwrite(tmp_path / "t.tif", truth)
    tifffile.imwrite(tmp_path / "p.tif", prob)
    assert main(["evaluate", str(tmp_path / "p.tif"), str(tmp_path / "t.tif"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    pred = prob >= 0.5
    assert res["overall"]["dice"] == pytest.approx(_dice(pred, truth))
    assert [r["dice"] for r in res["per_slice"]] == pytest.approx(
        [_dice(pred[z], truth[z]) for z in range(3)]
    )
    assert (
        main(["evaluate", str(tmp_path / "p.tif"), str(tmp_path / "t.tif"), "--threshold", "0.9"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"Dice {_dice(prob >= 0.9, truth):.4f}" in out and out.count("\n") == 5


def test_evaluate_folders_and_2d(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(3)
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    dices = []
    for name in ("x", "y"):
        t = (rng.random((16, 18)) > 0.5).astype(np.uint8)
        p = (rng.random((16, 18)) > 0.5).astype(np.uint8)
        Image.fromarray(t).save(tmp_path / "truth" / f"{name}.png")
        tifffile.imwrite(tmp_path / "pred" / f"{name}.tif", p[None])  # (1, Y, X) vs (Y, X)
        dices.append(_dice(p, t))
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "truth"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [res["per_image"][n]["dice"] for n in ("x", "y")] == pytest.approx(dices)


def test_predict_on_dask_cluster(tmp_path, model_path, stack):
    from distributed import LocalCluster

    path, img = stack
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        rc = main(
            [
                "predict",
                str(model_path),
                str(path),
                "-o",
                str(tmp_path / "p.zarr"),
                "--labels",
                str(tmp_path / "l.zarr"),
                "--tile",
                "32",
                "--device",
                "cpu",
                "--no-amp",
                "-q",
                "--dask-scheduler",
                cluster.scheduler_address,
            ]
        )
    assert rc == 0
    ref = _api(model_path, img)
    np.testing.assert_allclose(read_image(tmp_path / "p.zarr")[:], ref.prob, atol=1e-6)
    np.testing.assert_array_equal(read_image(tmp_path / "l.zarr")[:], ref.labels)


# --- validate first, leave nothing half-written, replace only our outputs -------------
def _files(root):
    """Every path under ``root`` (files and folders), relative."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _fast(model_path, image, out, *extra):
    return [
        "predict",
        str(model_path),
        str(image),
        "-o",
        str(out),
        "--tile",
        "32",
        "--device",
        "cpu",
        "--no-amp",
        "-q",
        *extra,
    ]


def _one_line_error(capsys, *needles):
    """The error is the last line of stderr (after any progress lines) and the only one."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert sum(("error:" in x or "interrupted" in x) for x in lines) == 1, err
    for n in needles:
        assert n in lines[-1], err
    return lines[-1]


@pytest.mark.parametrize(
    "case, needle",
    [
        ("slices", "outside"),
        ("channels", "expects 2 channel(s)"),
        ("same-output", "both name"),
        ("uncertainty-is-labels", "both name"),
        ("threshold", "threshold"),
        ("bad-slices", "comma-separated"),
        ("parent-is-a-file", "is a file, not a folder"),
    ],
)
def test_predict_validates_before_creating_anything(
    tmp_path, model_path, stack, capsys, case, needle
):
    path, _ = stack
    gray = tmp_path / "gray.tif"
    tifffile.imwrite(gray, np.zeros((3, 40, 52), np.uint8), photometric="minisblack")
    (tmp_path / "notes.txt").write_text("mine")
    p = tmp_path / "p.tif"
    argv = {
        "slices": _fast(model_path, path, p, "--slices", "0,7"),
        "channels": _fast(model_path, gray, p),
        "same-output": _fast(model_path, path, p, "--labels", str(p)),
        "uncertainty-is-labels": _fast(
            model_path,
            path,
            p,
            "--tta",
            "--uncertainty",
            "--labels",
            str(tmp_path / "p-uncertainty.tif"),
        ),
        "threshold": _fast(model_path, path, p, "--threshold", "1.5"),
        "bad-slices": _fast(model_path, path, p, "--slices", "0,two"),
        "parent-is-a-file": _fast(model_path, path, tmp_path / "notes.txt" / "p.tif"),
    }[case]
    before = _files(tmp_path)
    assert main(argv) == 2
    _one_line_error(capsys, needle)
    assert _files(tmp_path) == before  # nothing created: the next run is not refused
    assert main(_fast(model_path, path, p)) == 0


def test_predict_refuses_an_unwritable_folder_before_creating_anything(
    tmp_path, model_path, stack, capsys, monkeypatch
):
    import errno
    import tempfile

    path, _ = stack

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", k.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    before = _files(tmp_path)
    assert main(_fast(model_path, path, tmp_path / "new" / "p.tif")) == 2
    out = str(tmp_path / "new" / "p.tif")
    _one_line_error(capsys, f"cannot write '{out}': Read-only file system")
    assert _files(tmp_path) == before


def _fail_on_second(exc):
    calls = {"n": 0}

    def fail(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise exc
        return fail.real(*a, **k)

    return fail


@pytest.mark.parametrize("failure", ["write", "read", "ctrl-c", "create", "overwrite"])
def test_a_failed_run_leaves_no_file_behind(
    tmp_path, model_path, stack, capsys, monkeypatch, failure
):
    import errno

    import zarr

    from napari_temseg.core.data.volume import Volume
    from napari_temseg.core.progress import TextBar

    path, _ = stack
    out, lab = tmp_path / "out" / "p.tif", tmp_path / "out" / "l.zarr"
    argv = _fast(model_path, path, out, "--labels", str(lab))
    if failure == "overwrite":  # a failed --overwrite run does not leave a partial file either
        assert main(argv) == 0
        capsys.readouterr()
        argv = [*argv, "--overwrite"]
    before = _files(tmp_path)
    if failure in ("write", "overwrite"):  # the disk fills up while slice 1 is written
        full = OSError(errno.ENOSPC, "No space left on device", str(lab / "c" / "1" / "0" / "0"))
        fail = _fail_on_second(full)
        fail.real = zarr.Array.__setitem__
        monkeypatch.setattr(zarr.Array, "__setitem__", fail)
    elif failure == "read":
        fail = _fail_on_second(OSError(errno.EIO, "Input/output error", str(path)))
        fail.real = Volume.region
        monkeypatch.setattr(Volume, "region", fail)
    elif failure == "ctrl-c":
        fail = _fail_on_second(KeyboardInterrupt())
        fail.real = TextBar.__call__
        monkeypatch.setattr(TextBar, "__call__", fail)
        argv.remove("-q")
    else:  # the second output cannot be created (read-only folder)
        monkeypatch.setattr(
            zarr,
            "open",
            lambda p, **k: (_ for _ in ()).throw(
                OSError(errno.EROFS, "Read-only file system", str(p))
            ),
        )
    rc = main(argv)
    expected = {
        "write": f"cannot write '{lab}': No space left on device",
        "overwrite": f"cannot write '{lab}': No space left on device",
        "read": f"cannot read '{path}': Input/output error",
        "ctrl-c": "interrupted",
        "create": f"cannot write '{lab}': Read-only file system",
    }[failure]
    assert rc == (130 if failure == "ctrl-c" else 2)
    _one_line_error(capsys, expected)
    after = _files(tmp_path)
    if failure == "overwrite":  # the old outputs were replaced: the partial new ones are gone
        assert not out.exists() and not lab.exists()
        assert set(after) <= set(before)
    else:
        assert after == before


def test_overwrite_replaces_only_our_outputs(tmp_path, model_path, stack, capsys):
    import zarr

    path, _ = stack
    notes = tmp_path / "notes.zarr"  # a user's folder that happens to end in .zarr
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    theirs = tmp_path / "theirs.zarr"  # a zarr store another program wrote
    zarr.open(str(theirs), mode="w", shape=(3, 40, 52), dtype="f4")[:] = 1.0
    tif = tmp_path / "theirs.tif"
    tifffile.imwrite(tif, np.ones((3, 40, 52), np.float32))
    for victim, needle in (
        (notes, "not written by napari-temseg"),
        (theirs, "not written by"),
        (tif, "not written by"),
    ):
        assert main(_fast(model_path, path, victim, "--overwrite")) == 2
        _one_line_error(capsys, needle, str(victim))
    assert (notes / "todo.txt").read_text() == "keep me"
    assert float(read_image(theirs)[0, 0, 0]) == 1.0
    assert float(read_image(tif)[0, 0, 0]) == 1.0
    for ours in (tmp_path / "p.tif", tmp_path / "p.zarr"):  # our own outputs: replaced
        assert main(_fast(model_path, path, ours)) == 0
        assert main(_fast(model_path, path, ours, "--overwrite", "--prob-dtype", "uint8")) == 0
        assert np.dtype(read_image(ours).dtype) == np.uint8


def test_os_errors_are_one_line(tmp_path, capsys, monkeypatch):
    import errno

    from napari_temseg.core.data import read as io_read

    def denied(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(io_read, "read_image", denied)
    t = tmp_path / "t.tif"
    assert main(["evaluate", str(t), str(t)]) == 2
    line = _one_line_error(capsys, f"'{t}': Permission denied")
    assert line.startswith("temseg evaluate: error: cannot ")


def test_evaluate_into_a_pipe_that_closes_early(tmp_path):
    import subprocess
    import sys

    truth = (np.random.default_rng(4).random((3000, 4, 4)) > 0.5).astype(np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", truth)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "napari_temseg.cli",
            "evaluate",
            str(tmp_path / "t.tif"),
            str(tmp_path / "t.tif"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = proc.stdout.readline()  # `| head -1`: read one line, then close the pipe
    proc.stdout.close()
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=120)
    assert first.startswith(b"overall")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert rc in (0, 1)


def test_sigterm_ends_predict_like_ctrl_c_and_leaves_no_file(tmp_path, model_path):
    """`kill` (SIGTERM) mid-run: the clean-up runs, the partial outputs are removed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    img = np.random.default_rng(1).integers(0, 255, (40, 2, 256, 256), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", img)
    out, lab = tmp_path / "out" / "p.tif", tmp_path / "out" / "l.zarr"
    argv = [
        sys.executable,
        "-m",
        "napari_temseg.cli",
        "predict",
        str(model_path),
        str(tmp_path / "big.tif"),
        "-o",
        str(out),
        "--labels",
        str(lab),
        "--channel-axis",
        "1",
        "--tile",
        "64",
        "--batch",
        "1",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (proc.stderr.readline().startswith("[")):
        pass  # the first progress line: outputs exist and slices are being written
    assert out.exists(), "prediction never started"
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130 and "interrupted" in err, err
    assert not out.exists() and not lab.exists() and not (tmp_path / "out").exists()


def test_a_full_disk_is_found_before_any_slice_is_computed(
    tmp_path, model_path, stack, capsys, monkeypatch
):
    """TIFF outputs are memory maps: writing into a full disk through one kills the process
    (SIGBUS). The blocks are reserved when the file is made, so a full disk is a one-line
    error there, and nothing is left behind."""
    import errno
    import os

    from napari_temseg.core.inference import predict

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    def never(*a, **k):
        raise AssertionError("prediction started although the disk is full")

    monkeypatch.setattr(os, "posix_fallocate", full)
    monkeypatch.setattr(predict, "predict_stack", never)
    path, _ = stack
    out = tmp_path / "out" / "p.tif"
    before = _files(tmp_path)
    assert main(_fast(model_path, path, out)) == 2
    err = capsys.readouterr().err
    assert f"cannot write '{out}': No space left on device" in err and "Traceback" not in err
    assert _files(tmp_path) == before
