"""Slow end-to-end check on real EM data (ISBI 2012 ssTEM membranes, ../shared/data).

Run with ``pytest -m slow tests/realdata/test_real_data.py``. Skips cleanly when the shared
data folder is absent. The numbers that matter are in benchmarks/bench_train.py and
docs/experiments/ ("Training"); this only proves the whole path works on real data:
read -> fit() (default model, loss, optimiser, augmentation) -> predict_stack() on
sections the model never saw -> Dice clearly above the trivial answer.

Training is bounded by steps, not seconds: on a shared 2-core machine a 60 s budget
gave only 7 steps (of 256 px patches) and an all-membrane model, so the test would
measure the machine's load. 60 steps of 128 px patches are deterministic on CPU
(seeded) and take ~1-2 min on 2 busy cores.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TRAIN = [0, 1, 2]
UNSEEN = [10, 17]  # far from the training sections, so no near-duplicate neighbours
STEPS = {"epochs": 3, "steps_per_epoch": 20, "seconds": None, "patch": 128}
MARGIN = 0.15


def _realdata():
    spec = importlib.util.spec_from_file_location("_realdata", REPO / "benchmarks" / "_realdata.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def isbi():
    rd = _realdata()
    if not rd.available("isbi2012"):
        pytest.skip(
            f"real data not found in {rd.data_root()} (../shared/data/isbi2012); slow test skipped"
        )
    return rd.isbi2012()


def test_isbi_train_short_then_predict_unseen_sections(isbi):
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.evaluation.metrics import Counts, counts
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    vol, lab = isbi
    model = run(fit(vol[TRAIN], lab[TRAIN], train_cfg=TrainConfig(**STEPS)))
    assert model.history and "val_dice" in model.history[-1]

    res = run(predict_stack(model, vol, slices=UNSEEN))
    assert sorted(res.slices) == UNSEEN
    prob = np.asarray(res.prob)[UNSEEN]
    assert np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1
    pred = np.asarray(res.labels)[UNSEEN]
    truth = lab[UNSEEN]
    total = sum((counts(p, t) for p, t in zip(pred, truth, strict=False)), Counts())

    # Trivial answers: "all membrane" scores 2f/(1+f) (f = membrane fraction, ~0.2 here,
    # so ~0.35); "all background" scores 0; a constant probability can do no better than
    # the former. A network that learned membranes must beat it by a clear margin.
    f = truth.mean()
    all_membrane = 2 * f / (1 + f)
    print(
        f"membrane Dice {total.dice:.3f} on unseen sections, "
        f"all-membrane baseline {all_membrane:.3f}"
    )
    assert total.dice > all_membrane + MARGIN, (
        f"membrane Dice {total.dice:.3f} on unseen sections {UNSEEN} is not clearly above the "
        f"all-membrane baseline {all_membrane:.3f} (+{MARGIN}); history {model.history}"
    )


def test_emps_learning_curve_end_to_end(tmp_path, capsys):
    """`temseg learning-curve` on the EMPS micrographs: a small study (sizes 3
    and 12, a few fixed steps each) reads the folders, trains, scores every model on the
    held-out micrographs and writes its CSV and PNG; the recorded study (with the
    numbers that matter) is in docs/experiments/."""
    from napari_temseg.cli import main

    rd = _realdata()
    if not rd.available("emps"):
        pytest.skip(f"real data not found in {rd.data_root()} (../shared/data/emps)")
    root = rd.data_root() / "emps" / "train"
    out = tmp_path / "curve"
    args = ["learning-curve", str(root / "images"), str(root / "masks"), "-o", str(out)]
    args += ["--sizes", "3", "12", "--test-fraction", "0.05", "--epochs", "2"]
    args += ["--steps-per-epoch", "10", "--patch", "128", "--device", "cpu", "-q"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert (out / "curve.png").stat().st_size > 1000 and "<- flat" in text
    with open(out / "curve.csv") as f:
        rows = list(__import__("csv").DictReader(f))
    assert [int(r["size"]) for r in rows] == [3, 12]
    assert all(0 < float(r["dice"]) <= 1 for r in rows)
