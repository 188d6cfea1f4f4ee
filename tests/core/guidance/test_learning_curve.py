"""The learning-curve study (seed 002): nested subsets, one budget per size, a
held-out test set, CSV / PNG / table, progress with an ETA, stopping, CLI and API."""

import csv

import numpy as np
import pytest

from napari_temseg.core.config.train import TrainConfig
from napari_temseg.core.errors import InputError
from napari_temseg.core.guidance import learning_curve as lc
from napari_temseg.core.progress import StopToken

TINY = dict(epochs=1, seconds=None, steps_per_epoch=2, patch=64, batch=2, device="cpu", seed=0)


def micrographs(n=6, size=64, seed=0, classes=2):
    """Small images of bright discs (class 1) and, for 3 classes, dark squares (class 2)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        lab = np.zeros((size, size), np.uint8)
        for _ in range(3):
            cy, cx = rng.integers(10, size - 10, 2)
            lab[(yy - cy) ** 2 + (xx - cx) ** 2 < 40] = 1
        if classes == 3 and rng.random() < 0.5:
            y0, x0 = rng.integers(0, size - 12, 2)
            lab[y0 : y0 + 10, x0 : x0 + 10] = 2
        img = np.choose(lab, [0.5, 0.85, 0.15]) + rng.normal(0, 0.05, lab.shape)
        images.append(img.astype(np.float32))
        masks.append(lab)
    return images, masks


def test_ladder_and_split():
    assert lc.ladder(3) == (3,) and lc.ladder(30) == (5, 10, 25, 30)
    assert lc.ladder(366)[:6] == (5, 10, 25, 50, 100, 150) and lc.ladder(366)[-1] == 366
    tr, te = lc.split(10, 0.2)
    assert len(te) == 2 and sorted(tr + te) == list(range(10)) and (tr, te) == lc.split(10, 0.2)
    with pytest.raises(InputError, match="at least 2 images"):
        lc.split(1, 0.2)


def test_study_rows_nested_budget_report_and_eta(tmp_path, monkeypatch):
    import itertools
    import types

    # the study's clock runs half a second per reading: an ETA needs a second of history,
    # which these tiny runs may not take on a fast machine
    ticks, real = itertools.count(1), lc.time.monotonic
    monkeypatch.setattr(
        lc, "time", types.SimpleNamespace(monotonic=lambda: real() + 0.5 * next(ticks))
    )
    images, masks = micrographs(6)
    cfg = lc.CurveConfig(sizes=(1, 2, 4), compare_augment=True, test_fraction=0.34)
    progress = []
    gen = lc.learning_curve(images, masks, cfg, TrainConfig(**TINY, augment="flips"))
    while True:
        try:
            progress.append(next(gen))
        except StopIteration as done:
            result = done.value
            break
    assert result.test_images == 2 and result.sizes == (1, 2, 4)
    assert result.settings == ("augmentation flips", "no augmentation")
    assert [(r["setting"][:2], r["size"]) for r in result.rows] == [
        ("au", 1), ("au", 2), ("au", 4), ("no", 1), ("no", 2), ("no", 4)
    ]  # fmt: skip
    assert all(0 <= r["dice"] <= 1 and 0 <= r["iou"] <= r["dice"] + 1e-9 for r in result.rows)
    assert all(r["steps"] == 2 for r in result.rows)  # the same budget for every size
    assert any(p.eta is not None and "ETA" in p.line() for p in progress)  # over the study
    fractions = [p.fraction for p in progress if p.fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    lc.write_csv(result, tmp_path / "c.csv")
    with open(tmp_path / "c.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and float(rows[2]["dice"]) == pytest.approx(result.rows[2]["dice"])
    lc.plot(result, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    text = lc.table(result)
    assert text.count("<- flat") == 2
    assert text.count("reach within 0.02 Dice") + text.count("still rising at 4") == 2


def test_summary_flat_point_and_error_bars():
    r = lc.CurveResult(sizes=(5, 10, 25), settings=("a",))
    for seed, scores in enumerate(([0.5, 0.80, 0.82], [0.6, 0.84, 0.83])):
        for n, d in zip((5, 10, 25), scores, strict=True):
            r.rows.append({"setting": "a", "seed": seed, "size": n, "dice": d, "iou": d / 2})
    s = lc.summary(r, flat_within=0.02)
    assert [x["size"] for x in s if x["flat"]] == [10]  # 0.82 vs best 0.825
    assert "a: 10 image(s) reach within 0.02 Dice" in lc.table(r)
    r.rows = [x for x in r.rows if x["size"] != 10]
    assert "a: still rising at 25 image(s)" in lc.table(r)
    assert s[0]["dice"] == pytest.approx(0.55) and s[0]["dice_std"] == pytest.approx(0.05)


def test_k_classes_keep_one_class_table_and_stop_keeps_finished_runs():
    images, masks = micrographs(6, classes=3)
    masks[0][masks[0] == 2] = 0  # the first subsets may lack class 2
    only_discs = [m for m in masks if not (m == 2).any()]
    assert only_discs  # some training masks lack class 2
    stop = StopToken()
    cfg = lc.CurveConfig(sizes=(2, 3), test_fraction=0.34)
    gen = lc.learning_curve(images, masks, cfg, TrainConfig(**TINY), stop=stop)
    seen = 0
    while True:
        try:
            p = next(gen)
        except StopIteration as done:
            result = done.value
            break
        if p.step == 1 and p.total:  # the first run is scored: stop the study
            stop.request()
        seen += 1
    assert result.metric == "mean Dice" and result.stopped
    assert len(result.rows) == 1 and result.rows[0]["size"] == 2
    with pytest.raises(InputError, match="cannot hold every class: the smallest size must be"):
        next(lc.learning_curve(images, masks[:1] + [np.zeros_like(m) for m in masks[1:]],
                               lc.CurveConfig(sizes=(1, 2)), TrainConfig(**TINY)))  # fmt: skip


def test_bad_studies_are_refused_before_training():
    images, masks = micrographs(4)
    with pytest.raises(InputError, match="sizes up to 9 but only 3 training images"):
        next(lc.learning_curve(images, masks, lc.CurveConfig(sizes=(2, 9)), TrainConfig(**TINY)))
    with pytest.raises(InputError, match="both test images and test masks"):
        next(lc.learning_curve(images, masks, test_images=images))


def test_cli_and_api(tmp_path, capsys):
    from PIL import Image

    from napari_temseg import api
    from napari_temseg.cli import main

    images, masks = micrographs(5)
    for sub in ("img", "msk"):
        (tmp_path / sub).mkdir()
    for i, (im, m) in enumerate(zip(images, masks, strict=True)):
        Image.fromarray((im.clip(0, 1) * 255).astype(np.uint8)).save(tmp_path / "img" / f"{i}.png")
        Image.fromarray(m).save(tmp_path / "msk" / f"{i}.png")
    args = ["learning-curve", str(tmp_path / "img"), str(tmp_path / "msk"), "-o"]
    args += [str(tmp_path / "curve"), "--sizes", "1", "2", "--epochs", "1", "--patch", "64"]
    args += ["--steps-per-epoch", "1", "--device", "cpu", "-q"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "<- flat" in out and (tmp_path / "curve" / "curve.png").exists()
    with open(tmp_path / "curve" / "curve.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert main(args) == 2  # outputs exist: refused before any training
    assert "curve.csv' exists" in capsys.readouterr().err
    res = api.learning_curve(
        images, masks, sizes=[1, 3], output=tmp_path / "api", verbose=False, **TINY
    )
    assert [r["size"] for r in res.rows] == [1, 3] and (tmp_path / "api" / "curve.csv").exists()
