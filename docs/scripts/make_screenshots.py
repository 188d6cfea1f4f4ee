"""Reproducible screenshots of the napari-temseg docks for the docs (real napari window).

    xvfb-run -a python docs/scripts/make_screenshots.py [--epochs 4] [--out docs/images]

Starts its own Xvfb server (1600 x 1000, 24-bit) when the ``Xvfb`` binary exists, so the
window size and colours do not depend on xvfb-run's defaults (``--current-display`` uses
$DISPLAY as it is). Everything happens through the docks, as a user would do it: open
the synthetic FIB-SEM sample, "New mask" and paint three slices (copied from the ground
truth), train, predict, evaluate. Writes overview.png (for the README), annotate.png,
train.png, predict.png and evaluate.png.

``--classes``: the same with the 4-phase sample (matrix, pores, grains, hydration products;
the class table named in the Annotate dock's class list), writing classes-annotate.png,
classes-train.png, classes-predict.png and classes-evaluate.png (docs/multiclass.md).

``--suggest``: "where should I paint next?" - scribbles in one square of the FIB-SEM sample
(sparse mask), a short training, then the Annotate dock's "Suggest regions" and "Next
region", writing suggest.png (docs/user-guide.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SIZE = (1600, 1000)
PAINTED = (3, 8, 13)  # slices "painted" (copied from the ground truth)


def own_display() -> subprocess.Popen | None:
    """Start Xvfb with a fixed screen size and point DISPLAY at it (None if not available)."""
    if not shutil.which("Xvfb"):
        return None
    r, w = os.pipe()
    proc = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(w),
            "-screen",
            "0",
            f"{SIZE[0]}x{SIZE[1]}x24",
            "-nolisten",
            "tcp",
        ],
        pass_fds=(w,),
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        os.environ["DISPLAY"] = ":" + f.readline().strip()
    return proc


def settle(seconds: float = 0.5) -> None:
    from qtpy.QtWidgets import QApplication

    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        QApplication.processEvents()
        time.sleep(0.01)


def wait(job) -> None:
    while job is not None and job.running:
        settle(0.05)


def shot(viewer, path: Path) -> None:
    from PIL import Image

    settle(0.8)
    rgba = viewer.screenshot(canvas_only=False, flash=False)
    # 256-colour PNG: a quarter of the size, no visible loss for a UI screenshot
    Image.fromarray(rgba[..., :3]).quantize(colors=256).save(path, optimize=True)
    print("wrote", path)


def docks(viewer) -> dict:
    names = ("Annotate", "Train", "Predict", "Evaluate")
    out = {}
    for n in names:
        dock, w = viewer.window.add_plugin_dock_widget("napari-temseg", n, tabify=True)
        out[n] = (dock, w)
    return out


def raise_dock(d) -> None:
    d[0].show()
    d[0].raise_()
    settle(0.3)


def annotate(viewer, d) -> tuple:
    import numpy as np

    ice, tld = viewer.layers["fibsem ICE"], viewer.layers["fibsem TLD"]
    truth = viewer.layers["fibsem ground truth"]
    w = d["Annotate"][1]
    w.image.value = ice
    w.new_mask.clicked()
    mask = viewer.layers["fibsem ICE mask"]
    painted = np.zeros_like(mask.data)
    for z in PAINTED:
        painted[z] = truth.data[z]
    mask.data = painted
    viewer.dims.set_current_step(0, PAINTED[1])
    raise_dock(d["Annotate"])
    return ice, tld, truth, mask


def train(viewer, d, layers, mask, epochs: int):
    w = d["Train"][1]
    w.reset_choices()
    w.images.value = list(layers)
    w.mask.value = mask
    # a fixed number of steps (not a time budget) so the pictures do not depend on the machine
    w.patch.value, w.batch.value, w.epochs.value = 128, 8, epochs
    w.form.set_value("seconds", None)
    w.augment.value, w.preview_every = "flips", 3.0
    raise_dock(d["Train"])
    w.start_btn.clicked()
    wait(w.job)
    if w.model is None:
        raise SystemExit(f"training failed: {w.status.value}")
    return w


def predict(viewer, d, layers):
    w = d["Predict"][1]
    w.reset_choices()
    w.images.value = list(layers)
    w.tile.value = 384
    raise_dock(d["Predict"])
    w.run_btn.clicked()
    wait(w.job)
    return w


def phases(viewer, out: Path, epochs: int) -> str:
    """The multi-class pictures: 4-phase sample, class list, train, predict, evaluate."""
    import numpy as np

    from napari_temseg.adapters import classes as C

    viewer.open_sample("napari-temseg", "phases")
    d = docks(viewer)
    ice, tld = viewer.layers["phases ICE"], viewer.layers["phases TLD"]
    truth = viewer.layers["phases ground truth"]
    w = d["Annotate"][1]
    w.image.value = ice
    w.new_mask.clicked()
    mask = viewer.layers["phases ICE mask"]
    table = C.table_of(truth)  # the sample's class table, as if typed into the class list
    C.store(mask, table)
    C.apply_colors(mask, table, False)
    w.mask.value = None
    w.mask.value = mask
    painted = np.zeros_like(mask.data)
    for z in PAINTED:
        painted[z] = truth.data[z]
    mask.data = painted
    mask.selected_label = 2
    viewer.dims.set_current_step(0, PAINTED[1])
    raise_dock(d["Annotate"])
    shot(viewer, out / "classes-annotate.png")
    tw = train(viewer, d, [ice, tld], mask, epochs)
    shot(viewer, out / "classes-train.png")
    pw = d["Predict"][1]
    pw.reset_choices()
    pw.images.value = [ice, tld]
    pw.tile.value = 384
    raise_dock(d["Predict"])
    pw.run_btn.clicked()
    wait(pw.job)
    mask.visible = False
    for name in ("phases ICE preview",):
        if name in viewer.layers:
            viewer.layers[name].visible = False
    shot(viewer, out / "classes-predict.png")
    ev = d["Evaluate"][1]
    ev.reset_choices()
    ev.pred.value, ev.truth.value = viewer.layers["phases ICE prediction"], truth
    raise_dock(d["Evaluate"])
    ev.run_btn.clicked()
    shot(viewer, out / "classes-evaluate.png")
    return f"model: {tw.model!r}; prediction: {pw.status.value}; {ev.summary.value}"


def suggest(viewer, out: Path, epochs: int) -> str:
    """Paint one square as scribbles, train, suggest regions, go to the first one."""
    import numpy as np

    viewer.open_sample("napari-temseg", "fibsem")
    d = docks(viewer)
    ice = viewer.layers["fibsem ICE"]
    truth = viewer.layers["fibsem ground truth"].data
    a = d["Annotate"][1]
    a.image.value = ice
    a.new_mask.clicked()
    mask = viewer.layers["fibsem ICE mask"]
    a.sparse.value = True
    z, ys, xs = PAINTED[1], slice(64, 320), slice(64, 320)  # one square, every pixel labelled
    data = mask.data
    data[z, ys, xs] = np.where(truth[z, ys, xs] > 0, 1, 2)
    mask.data = data
    tw = train(viewer, d, [ice], mask, epochs)
    p = a.suggest
    p.form.set_value("n", 5)
    p.form.set_value("size", 128)
    raise_dock(d["Annotate"])
    p.suggest_btn.clicked()
    wait(p.job)
    p.next_btn.clicked()
    for name in ("fibsem ICE preview", "fibsem TLD"):
        if name in viewer.layers:
            viewer.layers[name].visible = False
    shot(viewer, out / "suggest.png")
    return f"model {tw.model!r}; {p.info.value}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "images"))
    ap.add_argument("--epochs", type=int, default=4, help="training epochs (50 steps each)")
    ap.add_argument("--current-display", action="store_true", help="do not start an own Xvfb")
    ap.add_argument("--classes", action="store_true", help="the multi-class pictures")
    ap.add_argument("--suggest", action="store_true", help="the suggested-regions picture")
    a = ap.parse_args()
    xvfb = None if a.current_display else own_display()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    import napari

    viewer = napari.Viewer(show=True, title="napari-temseg")
    viewer.window._qt_window.resize(*SIZE)  # noqa: SLF001 - window size for the pictures
    viewer.window._qt_window.move(0, 0)  # noqa: SLF001
    if a.classes or a.suggest:
        print(phases(viewer, out, a.epochs) if a.classes else suggest(viewer, out, a.epochs))
        viewer.close()
        if xvfb is not None:
            xvfb.terminate()
        return 0
    viewer.open_sample("napari-temseg", "fibsem")
    d = docks(viewer)
    ice, tld, truth, mask = annotate(viewer, d)
    shot(viewer, out / "annotate.png")
    tw = train(viewer, d, [ice, tld], mask, a.epochs)
    shot(viewer, out / "train.png")
    pw = predict(viewer, d, [ice, tld])
    mask.visible = False
    if "fibsem ICE preview" in viewer.layers:
        viewer.layers["fibsem ICE preview"].visible = False
    viewer.layers["fibsem ICE prediction"].visible = False
    shot(viewer, out / "predict.png")
    raise_dock(d["Train"])
    shot(viewer, out / "overview.png")
    ev = d["Evaluate"][1]
    ev.reset_choices()
    ev.pred.value, ev.truth.value = viewer.layers["fibsem ICE prediction"], truth
    raise_dock(d["Evaluate"])
    ev.run_btn.clicked()
    viewer.layers["fibsem ICE prediction"].visible = True
    shot(viewer, out / "evaluate.png")
    print(f"model: {tw.model!r}; prediction: {pw.status.value}; {ev.summary.value}")
    viewer.close()
    if xvfb is not None:
        xvfb.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
