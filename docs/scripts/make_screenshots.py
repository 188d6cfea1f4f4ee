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

``--live``: the Annotate dock's live preview - three strokes per phase on one slice of the
4-phase sample, the pixel classifier's answer drawn without a button, writing live.png.
``--taught``: the same strokes, then the Train dock trains a U-Net taught by the pixel
classifier (its validation Dice the dotted line of the plot) and the Predict dock predicts
the stack with the model kept, writing live.png, taught.png and taught-predict.png.

``--measure`` / ``--export`` (one or both): the TEM particles sample (as if opened with a
pixel size of 0.5 nm), its ground truth painted into a new mask, a short training, then
instance labels with touching particles split (Predict dock). ``--measure``: the Measure
dock's objects table sorted by size, a row selected (the view centred on that particle) and
the size histogram, writing measure.png. ``--export``: the Train dock's "Save / export
model..." file dialog with its file types listed and bioimage.io package chosen (a screen
grab: the dialog is a window of its own; Qt's own dialog, as Xvfb has no desktop one),
then the export itself, writing export.png (docs/user-guide.md, section 6).
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


def docks(viewer, names=("Annotate", "Train", "Predict", "Evaluate")) -> dict:
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


def live(viewer, out: Path) -> str:
    """Live preview: a few strokes per phase on one slice of the 4-phase sample, no button."""
    import numpy as np

    from napari_temseg.adapters import classes as C

    viewer.open_sample("napari-temseg", "phases")
    d = docks(viewer, names=("Annotate",))
    ice, truth = viewer.layers["phases ICE"], viewer.layers["phases ground truth"]
    viewer.layers["phases TLD"].visible = False
    w = d["Annotate"][1]
    w.image.value = ice
    w.new_mask.clicked()
    mask = viewer.layers["phases ICE mask"]
    C.store(mask, C.table_of(truth))  # the sample's phase names, as typed into the class list
    w.mask.value = None
    w.mask.value = mask
    w.sparse.value = True
    w.live.toggle.value = True
    z = PAINTED[1]
    viewer.dims.set_current_step(0, z)
    gt, k = truth.data[z], int(truth.data.max()) + 1
    rng = np.random.default_rng(1)
    mask.brush_size = 5
    for _ in range(3):  # three strokes per phase, each inside its phase
        for c in range(k):
            y, x = np.argwhere(gt == c)[rng.integers(np.count_nonzero(gt == c))]
            for dx in range(-15, 16, 3):
                if 0 <= x + dx < gt.shape[1] and gt[y, x + dx] == c:
                    mask.paint((z, y, x + dx), k if c == 0 else c)
            settle(0.1)
    t0 = time.monotonic()
    while "phases ICE live preview" not in viewer.layers or w.live.busy():
        settle(0.1)
        if time.monotonic() - t0 > 120:
            raise TimeoutError("no live preview")
    viewer.layers["phases ICE live preview"].opacity = 0.5
    raise_dock(d["Annotate"])
    shot(viewer, out / "live.png")
    return w.live.status.value


def taught(viewer, out: Path, epochs: int) -> str:
    """The whole loop: strokes -> live answer -> a U-Net taught by it -> prediction."""
    said = live(viewer, out)
    d = docks(viewer, names=("Train", "Predict"))
    ice, mask = viewer.layers["phases ICE"], viewer.layers["phases ICE mask"]
    viewer.layers["phases ICE live preview"].visible = False
    tw = train(viewer, d, [ice], mask, epochs)
    shot(viewer, out / "taught.png")
    predict(viewer, d, [ice])
    for name in ("phases ICE preview", "phases ICE probability"):
        if name in viewer.layers:
            viewer.layers[name].visible = False
    viewer.layers["phases ICE prediction"].opacity = 0.6
    shot(viewer, out / "taught-predict.png")
    return f"{said}\n{tw.status.value}"


def screen_shot(viewer, path: Path) -> None:
    """The whole screen inside the main window's frame: with the dialogs and popups open
    over it (``viewer.screenshot`` draws the main window alone)."""
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    settle(0.8)
    tmp = path.with_suffix(".grab.png")
    geo = viewer.window._qt_window.frameGeometry()  # noqa: SLF001 - the window's place
    QApplication.primaryScreen().grabWindow(0).copy(geo).save(str(tmp))
    with Image.open(tmp) as im:
        im.convert("RGB").quantize(colors=256).save(path, optimize=True)
    tmp.unlink()
    print("wrote", path)


def close_toasts(viewer) -> None:
    """Close the notification toasts: the training preview is added without the image's
    units (adapters/outputs.show_preview), and napari warns about it at once."""
    from qtpy.QtWidgets import QDialog

    main = viewer.window._qt_window  # noqa: SLF001 - the toasts are its children
    for w in main.findChildren(QDialog):
        if type(w).__name__ == "NapariQtNotification":
            w.close()


def export_dialog(viewer, tw, folder: Path, out: Path) -> None:
    """Click "Save / export model...", choose the bioimage.io type in the dialog (its file
    type list open for the picture), save: the dock exports the package."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QComboBox, QFileDialog

    seen = []

    def in_dialog() -> None:
        dlg = QApplication.activeModalWidget()
        if not isinstance(dlg, QFileDialog):  # a desktop (native) dialog: cannot be driven
            seen.append(None)
            if dlg is not None:
                dlg.reject()
            return
        seen.append(dlg)
        dlg.setGeometry(300, 140, 640, 420)  # over the canvas: the Train dock stays in view
        dlg.setDirectory(str(folder))
        dlg.selectNameFilter("bioimage.io package (*.zip)")  # the name's ending follows
        types = dlg.findChild(QComboBox, "fileTypeCombo")
        types.setStyleSheet("combobox-popup: 0;")  # the list below the box, not over the name
        settle(0.3)
        types.showPopup()
        screen_shot(viewer, out / "export.png")
        types.hidePopup()
        dlg.accept()

    QTimer.singleShot(500, in_dialog)
    tw.save_btn.clicked()  # the file dialog's own event loop runs until in_dialog accepts
    if seen != [seen[0]] or seen[0] is None:
        raise SystemExit("no Qt file dialog appeared: run under Xvfb (no desktop dialog)")


def objects(viewer, out: Path, epochs: int, pictures: set[str]) -> str:
    """Particles: paint, train, instance labels; the Measure dock and / or the export."""
    import tempfile

    import numpy as np
    from qtpy.QtCore import Qt

    from napari_temseg._sample_data import particles_sample

    # the sample as opened with its pixel size: viewer.add_image(..., scale=, units=)
    um = {"scale": (0.5, 0.5), "units": ("nm", "nm")}
    for data, kwargs, kind in particles_sample():
        getattr(viewer, f"add_{kind}")(data, **kwargs, **um)
    image, truth = viewer.layers["particles"], viewer.layers["particles ground truth"]

    d = docks(viewer, ("Annotate", "Train", "Predict", "Measure"))
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9: viewer.canvas.overlays
    (canvas.overlays if canvas is not None else viewer).scale_bar.visible = True
    a = d["Annotate"][1]
    a.image.value = image
    a.new_mask.clicked()
    mask = viewer.layers["particles mask"]
    mask.data = np.asarray(truth.data).copy()  # "painted": the whole image, copied
    tw = train(viewer, d, [image], mask, epochs)
    if "particles preview" in viewer.layers:  # made without the image's units: napari then
        viewer.layers["particles preview"].units = image.units  # drops them (scale bar)
    pw = d["Predict"][1]
    pw.reset_choices()
    pw.images.value = [image]
    pw.tile.value = 512
    pw.form.set_value("instances", True)
    pw.form.set_value("split_touching", True)
    pw.form.set_value("exclude_border", True)
    pw.form.set_value("fill_holes", True)
    pw.form.set_value("min_size", 20)
    pw.form.toggle.value = True  # Advanced settings open: the options that made the ids
    raise_dock(d["Predict"])
    pw.run_btn.clicked()
    wait(pw.job)
    for name in ("particles mask", "particles preview", "particles probability"):
        if name in viewer.layers:
            viewer.layers[name].visible = False
    close_toasts(viewer)
    done = [f"model {tw.model!r}", f"prediction: {pw.status.value}"]
    if "measure" in pictures:
        mw = d["Measure"][1]
        mw.reset_choices()
        mw.labels.value = viewer.layers["particles prediction"]
        mw.images.value = [image]
        main = viewer.window._qt_window  # noqa: SLF001 - a wider dock for the table
        main.resizeDocks([d["Measure"][0]], [640], Qt.Orientation.Horizontal)
        raise_dock(d["Measure"])
        mw.run_btn.clicked()
        t, df = mw.table, mw.df
        heads = [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]
        area = next(c for c in df.columns if c.startswith("area"))
        t.sortItems(heads.index(area), Qt.SortOrder.DescendingOrder)
        # the largest particle in the middle half of the image: the view stays on the image
        cy, cx = (next(c for c in df.columns if c.startswith(f"centroid_{ax}")) for ax in "yx")
        ey, ex = np.asarray(image.data.shape) * np.asarray(image.scale)  # in nm
        mid = df[df[cy].between(ey / 4, 3 * ey / 4) & df[cx].between(ex / 4, 3 * ex / 4)]
        label = int(mid.sort_values(area).iloc[-1]["label"])
        scene = getattr(viewer, "scene", None)  # napari >= 0.9: viewer.scene.camera
        (scene if scene is not None else viewer).camera.zoom *= 1.6
        row = next(r for r in range(t.rowCount()) if float(t.item(r, 0).text()) == label)
        t.selectRow(row)  # the view centres on that particle, the layer selects its id
        shot(viewer, out / "measure.png")
        done.append(mw.status.value)
    if "export" in pictures:
        raise_dock(d["Train"])
        with tempfile.TemporaryDirectory(prefix="models-") as folder:
            export_dialog(viewer, tw, Path(folder), out)
            settle(0.5)
            done.append(tw.status.value)
            pw.source.value = "model file"  # the package runs in the Predict dock again
            zips = sorted(Path(folder).glob("*.zip"))
            if not zips:
                raise SystemExit(f"export failed: {tw.status.value}")
            pw.path.value = str(zips[0])
            done.append(f"back in the Predict dock: {pw.model_info.value}")
    return "\n".join(done)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "images"))
    ap.add_argument("--epochs", type=int, default=4, help="training epochs (50 steps each)")
    ap.add_argument("--current-display", action="store_true", help="do not start an own Xvfb")
    ap.add_argument("--classes", action="store_true", help="the multi-class pictures")
    ap.add_argument("--suggest", action="store_true", help="the suggested-regions picture")
    ap.add_argument("--measure", action="store_true", help="the Measure dock picture")
    ap.add_argument("--live", action="store_true", help="the live preview picture")
    ap.add_argument("--taught", action="store_true", help="live preview -> taught U-Net")
    ap.add_argument("--export", action="store_true", help="the model export picture")
    a = ap.parse_args()
    xvfb = None if a.current_display else own_display()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    import napari

    viewer = napari.Viewer(show=True, title="napari-temseg")
    viewer.window._qt_window.resize(*SIZE)  # noqa: SLF001 - window size for the pictures
    viewer.window._qt_window.move(0, 0)  # noqa: SLF001
    pictures = {p for p in ("measure", "export") if getattr(a, p)}
    if a.live or a.taught:
        print(taught(viewer, out, a.epochs) if a.taught else live(viewer, out))
        viewer.close()
        if xvfb is not None:
            xvfb.terminate()
        return 0
    if a.classes or a.suggest or pictures:
        if a.classes or a.suggest:
            print(phases(viewer, out, a.epochs) if a.classes else suggest(viewer, out, a.epochs))
        else:
            print(objects(viewer, out, a.epochs, pictures))
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
