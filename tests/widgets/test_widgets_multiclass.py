"""Multi-class in the docks: a mask with a class table is trained, predicted into
per-class probability layers and a class-coloured prediction, re-labelled with a minimum
confidence and evaluated per class, in a real napari window."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_helpers import (
    errors_since,
    gui_marks,
    n_records,
    plugin_docks,
    run_predict,
    set_train_form,
    wait_job,
)

pytestmark = gui_marks()

NAMES = ["matrix", "pores", "grains", "hydrates"]


@pytest.fixture
def docks(make_napari_viewer):
    with plugin_docks(make_napari_viewer, ("Train", "Predict", "Evaluate")) as opened:
        yield opened


def test_train_predict_relabel_evaluate_k_classes(docks, qtbot):
    from napari_temseg.core.data.synthetic.phases import PHASE_COLORS, make_phases

    viewer, train, predict, evaluate = docks
    img, truth = make_phases((3, 96, 96), seed=3)
    image = viewer.add_image(img[:, 1], name="phases")  # one detector, (Z, Y, X)
    table = {"names": NAMES, "colors": list(PHASE_COLORS)}
    gt = viewer.add_labels(truth, name="phases ground truth", metadata={"temseg_classes": table})
    painted = np.zeros_like(truth)
    painted[[0, 2]] = truth[[0, 2]]  # two painted slices, slice 1 unseen
    mask = viewer.add_labels(painted, name="phases mask", metadata={"temseg_classes": table})

    set_train_form(train, image_layers=[image], mask_layer=mask, epochs=2, patch=64)
    train.preview_every = 0.5
    start = n_records()
    train.start_btn.clicked()
    wait_job(qtbot, train)
    assert errors_since(start) == []
    model = train.model
    assert model.classes.names == tuple(NAMES) and model.model_cfg.classes == 4
    assert "per class pores" in train.status.value
    assert set(train.plot.classes) == set(NAMES[1:])  # per-class Dice lines
    preview = viewer.layers["phases preview"]
    assert preview.data.dtype == np.uint8 and preview.data.max() <= 3  # a class map

    predict.reset_choices()
    predict.images.value = [image]
    predict.tile.value, predict.device.value = 64, "cpu"
    assert predict.threshold.label.startswith("minimum confidence")
    predict.run_btn.clicked()
    wait_job(qtbot, predict)
    assert errors_since(start) == []
    probs = [viewer.layers[f"phases P({n})"] for n in NAMES]
    labels_layer = viewer.layers["phases prediction"]
    labels = labels_layer.data
    stack = np.stack([np.asarray(p.data) for p in probs], axis=1)
    assert stack.shape == (3, 4, 96, 96) and stack.dtype == np.float16
    assert np.mean(labels == stack.astype(np.float32).argmax(1)) > 0.99  # float16 near-ties
    np.testing.assert_allclose(stack.astype(np.float32).sum(1), 1.0, atol=5e-3)
    assert labels_layer.colormap.map(np.array([1]))[0][:3] == pytest.approx(
        [0x1F / 255, 0x77 / 255, 0xB4 / 255], abs=1e-2
    )  # pores in the class colour

    predict.threshold.value = 0.95  # minimum confidence: re-label, no new prediction
    wait_job(qtbot, predict)
    unsure = stack.astype(np.float32).max(1) < 0.95
    assert unsure.any() and np.all(labels[unsure] == 4) and np.all(labels[~unsure] < 4)
    assert "minimum confidence 0.95" in predict.status.value

    evaluate.reset_choices()
    evaluate.pred.value, evaluate.truth.value = labels_layer, gt
    evaluate.run_btn.clicked()
    assert not evaluate.view.native.isHidden() and "mean IoU" in evaluate.summary.value
    assert evaluate.table.rowCount() == 4  # one row per class
    evaluate.view.value = "confusion matrix"
    assert evaluate.table.columnCount() == 6  # truth, 4 classes, unsure
    evaluate.view.value = "per slice: class shares"
    assert evaluate.table.rowCount() == 3


def test_paint_train_predict_evaluate_in_one_session(make_napari_viewer, qtbot):
    """The whole multi-class loop in one real window, all four docks: sparse scribbles of two
    classes and background picked in the Annotate class list, trained by the Train dock,
    predicted by the Predict dock in the class colours and evaluated by the Evaluate dock."""
    from napari_temseg.core.data.synthetic.phases import make_phases

    with plugin_docks(make_napari_viewer, ("Annotate", "Train", "Predict", "Evaluate")) as d:
        viewer, annotate, train, predict, evaluate = d
        img, truth = make_phases((2, 64, 64), channels=1, seed=5)
        truth = np.where(truth <= 2, truth, 0).astype(np.uint8)  # three classes
        image = viewer.add_image(img[:, 0], name="em")
        gt = viewer.add_labels(truth, name="em truth")
        annotate.image.value = image
        annotate.new_mask.clicked()
        mask = viewer.layers["em mask"]
        annotate.sparse.value = True
        annotate.add_class.clicked()  # background, foreground, class 2
        mask.brush_size = 3
        for row, value in ((1, 1), (2, 2), (0, 3)):  # sparse: background is painted as 3
            annotate.class_list.setCurrentRow(row)
            assert mask.selected_label == value
            zs, ys, xs = np.nonzero(truth == row)
            for i in np.linspace(0, len(ys) - 1, 12).astype(int):
                viewer.dims.set_point(0, zs[i])
                mask.paint((zs[i], ys[i], xs[i]), mask.selected_label)
        assert set(np.unique(mask.data)) == {0, 1, 2, 3}

        set_train_form(train, image_layers=[image], mask_layer=mask, epochs=2, patch=64)
        start = n_records()
        train.start_btn.clicked()
        wait_job(qtbot, train)
        assert errors_since(start) == []
        assert train.model.classes.k == 3 and train.model.train_cfg.sparse

        run_predict(qtbot, predict, [image], tile=64)
        assert errors_since(start) == []
        labels_layer = viewer.layers["em prediction"]
        assert labels_layer.data.shape == truth.shape and labels_layer.data.max() <= 2
        from napari.utils.colormaps.standardize_color import transform_color

        table = train.model.classes  # the mask's table, its colours on the prediction
        assert table.names == tuple(mask.metadata["temseg_classes"]["names"])
        for c in (1, 2):
            assert labels_layer.colormap.map(np.array([c]))[0][:3] == pytest.approx(
                transform_color(table.colors[c])[0][:3], abs=1e-2
            )

        evaluate.reset_choices()
        evaluate.pred.value, evaluate.truth.value = labels_layer, gt
        evaluate.run_btn.clicked()
        assert errors_since(start) == []
        assert evaluate.table.rowCount() == 3 and "mean IoU" in evaluate.summary.value


def _unet(table, rec):
    """A tiny untrained 3-class U-Net whose history is the one record ``rec``."""
    from napari_temseg.core.config.model import InputSpec, ModelConfig
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.modelfile.format import TrainedModel
    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="small-unet", base_width=4, in_channels=1, classes=3)
    return TrainedModel(
        net=build_model(cfg).eval(),
        model_cfg=cfg,
        input_spec=InputSpec(channels=1, norm_lo=(0.0,), norm_hi=(1.0,)),
        classes=table,
        train_cfg=TrainConfig(sparse=True),
        history=[rec],
    )


def test_train_dock_shows_painted_background_and_an_absent_class(docks, qtbot):
    """Scribbles: background is scored, so the status and the plot show it; a class without
    a validation pixel shows '-', never a score."""
    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.progress import Progress

    viewer, train, _, _ = docks
    table = ClassTable(("matrix", "pores", "grains"))
    rec = {"epoch": 1, "step": 5, "loss": 0.4, "val_dice": 0.5, "elapsed": 1.0}
    rec["val_dice_classes"] = [0.4, None, 0.6]
    train._classes, train._run_info = table, {"sparse": True, "background": True}
    train._on_progress(Progress("train", 5, 10, extra={"epoch_record": rec}))
    assert set(train.plot.classes) == {"matrix", "grains"}  # pores: no point, not 1.0

    train._on_done(_unet(table, rec))
    assert "per class matrix 0.40, pores -, grains 0.60" in train.status.value


def test_train_dock_shows_the_teachers_score_and_which_model_is_kept(docks, qtbot):
    """A U-Net taught by the pixel classifier: the plot draws the classifier's validation
    Dice next to the U-Net's, and the status says which of the two models the dock holds."""
    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.progress import Progress

    viewer, train, _, _ = docks
    table = ClassTable(("matrix", "pores", "grains"))
    rec = {"epoch": 1, "step": 5, "loss": 0.4, "val_dice": 0.7, "elapsed": 1.0}
    rec.update(val_dice_classes=[0.6, 0.7, 0.8], teacher_val_dice=0.65)
    train._classes, train._run_info = table, {"sparse": True, "background": True}
    train._on_progress(Progress("train", 5, 10, val_dice=0.7, extra={"epoch_record": rec}))
    assert train.plot.teacher == pytest.approx(0.65) and train.plot.dice
    train.plot.repaint()  # the dotted line and its label paint without error

    train._on_done(_unet(table, rec))
    assert "the U-Net (validation Dice 0.700) is kept over its teacher" in train.status.value
