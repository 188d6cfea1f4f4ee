"""Train and Predict docks end to end on the synthetic sample, Stop, errors, bad input."""

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
    tiny_model,
    wait_job,
)

# docks are opened the way napari does (npe2 + PublicOnlyProxy viewer); private API use fails
pytestmark = gui_marks()

# Dice bound for 100 steps of a width-8 small U-Net on the 512 x 512 particles sample.
# All-foreground scores 2f / (1 + f) ~ 0.3 (f ~ 0.18 foreground), all-background 0, and
# a prediction shifted / transposed against the image overlaps at chance level (~f).
# So > 0.5 means the docks fed correctly aligned data and wrote the result where it
# belongs. Measured 0.64-0.81 over training seeds on a 160 px crop (tests/_widget_helpers).
MIN_DICE = 0.5


@pytest.fixture
def docks(make_napari_viewer):
    with plugin_docks(make_napari_viewer, ("Annotate", "Train", "Predict")) as opened:
        yield opened


def _particles(viewer, annotate):
    """The particles sample opened like a user does; its ground truth painted into a new mask."""
    viewer.open_sample("napari-temseg", "particles")
    image, truth = viewer.layers["particles"], viewer.layers["particles ground truth"]
    annotate.reset_choices()
    annotate.image.value = image
    annotate.new_mask.clicked()
    mask = viewer.layers["particles mask"]
    mask.data = np.asarray(truth.data).copy()
    return image, truth, mask


def test_train_predict_threshold_save_continue(docks, qtbot, tmp_path):
    from napari_temseg._widgets import session
    from napari_temseg.core.evaluation.metrics import dice

    viewer, annotate, train, predict = docks
    image, truth, mask = _particles(viewer, annotate)
    set_train_form(train, image_layers=[image], mask_layer=mask, epochs=2)
    train.preview_every = 0.5
    start = n_records()
    train.start_btn.clicked()
    assert train.stop_btn.enabled and not train.start_btn.enabled
    wait_job(qtbot, train)
    assert errors_since(start) == []
    model = train.model
    assert model is not None and session.get_model(viewer) is model
    assert len(model.history) == 2 and train.status.value.startswith("Done")
    assert len(train.plot.loss) >= 2 and train.plot.dice  # the live plot got points
    preview = viewer.layers["particles preview"]
    assert (
        preview.data.shape == (512, 512) and preview.metadata["napari_temseg"]["role"] == "preview"
    )

    run_predict(qtbot, predict, [image], tile=256)
    prob = viewer.layers["particles probability"].data
    labels = viewer.layers["particles prediction"].data
    assert prob.shape == labels.shape == (512, 512)
    assert prob.dtype == np.float32 and labels.dtype == np.uint8
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    score = dice(labels, truth.data)
    print(f"GUI end-to-end Dice after 100 steps: {score:.3f}")
    assert score > MIN_DICE

    predict.threshold.value = 0.9  # re-threshold, no new prediction
    assert np.array_equal(labels, (prob >= 0.9).astype(np.uint8))
    assert viewer.layers["particles prediction"].data is labels

    path = train.save_to(tmp_path / "particles")
    assert path.name == "particles.safetensors" and path.is_file()
    predict.source.value = "model file"
    predict.path.value = str(path)
    before = prob.copy()
    predict.run_btn.clicked()
    wait_job(qtbot, predict)
    again = viewer.layers["particles probability"].data
    np.testing.assert_allclose(again, before, atol=1e-4)  # same model from the file
    assert [la.name for la in viewer.layers].count("particles probability") == 1  # replaced

    train.epochs.value = 1
    train.continue_btn.clicked()
    wait_job(qtbot, train)
    assert len(train.model.history) == 3  # warm start kept the history


def test_stop_keeps_a_usable_model(docks, qtbot):
    from napari_temseg.core.inference.predict import predict_slice

    viewer, annotate, train, _ = docks
    image, _, mask = _particles(viewer, annotate)
    set_train_form(train, image_layers=[image], mask_layer=mask, seconds=600, epochs=None)
    train.preview.value = False
    train.start_btn.clicked()
    qtbot.waitUntil(lambda: train.job.records >= 2, timeout=120_000)
    qtbot.waitUntil(lambda: "| cpu, " in train.status.value, timeout=10_000)  # + precision
    train.stop_btn.clicked()
    wait_job(qtbot, train, timeout=60_000)
    assert train.model is not None and "Stopped" in train.status.value
    assert train.model.history[-1]["precision"] in train.status.value
    prob = predict_slice(train.model, image.data, 0)
    assert prob.shape == (512, 512) and np.isfinite(prob).all()
    assert train.start_btn.enabled and train.save_btn.enabled


def test_error_in_worker_becomes_notification(docks, qtbot):
    viewer, annotate, train, _ = docks
    image, _, mask = _particles(viewer, annotate)
    mask.data[:] = 0
    mask.data[10:20, 10:20] = 1  # foreground only: no background to learn from
    mask.data[:] = 1
    set_train_form(train, image_layers=[image], mask_layer=mask)
    start = n_records()
    train.start_btn.clicked()
    wait_job(qtbot, train)
    msgs = errors_since(start)
    assert len(msgs) == 1 and "background" in msgs[0], msgs
    assert train.model is None and train.start_btn.enabled and not train.stop_btn.enabled
    viewer.add_points([[1, 1]])  # still alive


def test_train_bad_input_messages(docks):
    viewer, annotate, train, _ = docks
    start = n_records()
    train.start_btn.clicked()  # nothing open
    assert "no image layer" in errors_since(start)[-1]
    img = viewer.add_image(np.random.rand(3, 32, 32).astype(np.float32), name="em")
    other = viewer.add_labels(np.zeros((3, 16, 16), np.uint8), name="small")
    set_train_form(train, image_layers=[img], mask_layer=other)
    train.start_btn.clicked()
    assert "has shape (3, 16, 16) but the image needs (3, 32, 32)" in errors_since(start)[-1]
    two = viewer.add_image(np.random.rand(3, 32, 48).astype(np.float32), name="wide")
    set_train_form(train, image_layers=[img, two], mask_layer=other)
    train.start_btn.clicked()
    assert "same shape" in errors_since(start)[-1]
    assert train.job is None


def test_predict_bad_input_messages(docks):
    from napari_temseg._widgets import session

    viewer, _, _, predict = docks
    start = n_records()
    a = viewer.add_image(np.random.rand(2, 32, 32).astype(np.float32), name="a")
    b = viewer.add_image(np.random.rand(2, 32, 32).astype(np.float32), name="b")
    predict.reset_choices()
    predict.images.value = [a]
    predict.run_btn.clicked()
    assert "no model trained" in errors_since(start)[-1]
    session.set_model(viewer, tiny_model(channels=1))
    predict.images.value = [a, b]  # two channels for a one-channel model
    predict.run_btn.clicked()
    assert "expects 1 channel(s) but the selection has 2" in errors_since(start)[-1]
    predict.images.value = []
    predict.run_btn.clicked()
    assert "no image layer selected" in errors_since(start)[-1]
    predict.source.value = "model file"
    predict.path.value = "/nonexistent/model.safetensors"
    predict.images.value = [a]
    predict.run_btn.clicked()
    assert "choose an existing model file" in errors_since(start)[-1]
    assert predict.job is None and len(viewer.layers) == 2


def test_predict_never_overwrites_user_layer(docks, qtbot):
    from napari_temseg._widgets import session

    viewer, _, _, predict = docks
    img = viewer.add_image(np.random.rand(2, 32, 32).astype(np.float32), name="em")
    user = viewer.add_labels(np.full((2, 32, 32), 7, np.uint8), name="em prediction")
    session.set_model(viewer, tiny_model())
    predict.reset_choices()
    predict.images.value = [img]
    predict.device.value = "cpu"
    predict.run_btn.clicked()
    wait_job(qtbot, predict, 60_000)
    assert (user.data == 7).all()
    ours = [
        la
        for la in viewer.layers
        if la.metadata.get("napari_temseg", {}).get("role") == "prediction"
    ]
    assert len(ours) == 1 and ours[0] is not user and ours[0].name == "em prediction (2)"
    assert ours[0].data.shape == (2, 32, 32)


def test_large_outputs_stream_into_zarr_and_rethreshold(docks, qtbot, monkeypatch):
    """Above the in-memory limit the outputs are zarr arrays (one chunk per slice); the
    threshold slider then re-thresholds slice by slice in a worker."""
    from napari_temseg._widgets import session
    from napari_temseg.adapters import outputs

    viewer, _, _, predict = docks
    monkeypatch.setattr(outputs, "IN_MEMORY_BYTES", 1000)
    img = viewer.add_image(np.random.default_rng(0).random((3, 32, 40), np.float32), name="big")
    session.set_model(viewer, tiny_model())
    predict.reset_choices()
    predict.images.value, predict.device.value = [img], "cpu"
    predict.run_btn.clicked()
    wait_job(qtbot, predict, 60_000)
    assert predict.status.value.startswith("Done: 3 slice(s)")  # the end of a zarr run works
    prob = viewer.layers["big probability"].data
    labels = viewer.layers["big prediction"].data
    assert type(prob).__module__.startswith("zarr") and prob.shape == (3, 32, 40)
    assert prob.chunks == (1, 32, 40)
    p = np.asarray(prob[:])
    assert p.min() >= 0.0 and p.max() <= 1.0 and p.std() > 0  # the slices were written
    t = float(np.quantile(p, 0.5))
    predict.threshold.value = round(t, 2)
    wait_job(qtbot, predict, 60_000)
    np.testing.assert_array_equal(np.asarray(labels[:]), (p >= round(t, 2)).astype(np.uint8))
    assert predict.status.value == f"Labels re-made at threshold {round(t, 2):.2f}."


def test_threshold_moved_while_predicting_is_applied_at_the_end(docks, qtbot):
    from napari_temseg._widgets import session

    viewer, _, _, predict = docks
    img = viewer.add_image(np.random.default_rng(1).random((6, 64, 64), np.float32), name="em")
    session.set_model(viewer, tiny_model())
    predict.reset_choices()
    predict.images.value, predict.device.value, predict.tile.value = [img], "cpu", 32
    predict.run_btn.clicked()
    assert predict.job.running
    predict.threshold.value = 0.7  # while the slices stream in
    wait_job(qtbot, predict, 60_000)
    qtbot.waitUntil(lambda: not predict.job.running, timeout=60_000)
    prob = viewer.layers["em probability"].data
    labels = viewer.layers["em prediction"].data
    np.testing.assert_array_equal(labels, (prob >= 0.7).astype(np.uint8))


def test_a_prediction_the_user_edited_is_never_overwritten(docks, qtbot):
    from napari_temseg._widgets import session

    viewer, _, _, predict = docks
    img = viewer.add_image(np.random.default_rng(2).random((2, 32, 32), np.float32), name="em")
    session.set_model(viewer, tiny_model())
    predict.reset_choices()
    predict.images.value, predict.device.value = [img], "cpu"
    predict.run_btn.clicked()
    wait_job(qtbot, predict, 60_000)
    edited = viewer.layers["em prediction"]
    edited.paint((0, 5, 5), 9)  # a correction with the brush
    kept = np.array(edited.data, copy=True)
    predict.threshold.value = 0.2  # re-thresholds into a new layer
    wait_job(qtbot, predict, 60_000)
    np.testing.assert_array_equal(edited.data, kept)
    fresh = viewer.layers["em prediction (2)"]
    prob = viewer.layers["em probability"].data
    np.testing.assert_array_equal(fresh.data, (prob >= 0.2).astype(np.uint8))
    fresh.name = "my corrections"  # renaming makes it the user's too
    predict.run_btn.clicked()
    wait_job(qtbot, predict, 60_000)
    assert viewer.layers["my corrections"].data is fresh.data
    np.testing.assert_array_equal(edited.data, kept)
    names = [la.name for la in viewer.layers]
    assert names.count("em prediction") == 1 and "em prediction (2)" in names


def test_a_save_that_fails_is_rescued_or_kept_in_the_dock(docks, monkeypatch, tmp_path):
    import errno
    import tempfile

    from napari_temseg.core.modelfile import save

    _, _, train, _ = docks
    train.model = tiny_model()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    (tmp_path / "systmp").mkdir()
    target = tmp_path / "ro" / "m.safetensors"
    fail_under = [str(target.parent)]
    real = save.write_file

    def read_only(tensors, filename, metadata):
        if any(str(filename).startswith(f) for f in fail_under):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(tensors, filename, metadata)

    monkeypatch.setattr(save, "write_file", read_only)
    path = train.save_to(target)
    assert path.parent == tmp_path / "home" / save.RESCUE_NAME and path.exists()
    assert f"cannot save '{target}': the drive is read-only" in train.status.value
    assert f"saved to '{path}' instead" in train.status.value and "\n" not in train.status.value
    fail_under.append(str(tmp_path))  # every folder read-only: the dock keeps the model
    assert train.save_to(target) is None and train.model is not None
    assert "kept in this dock until you close napari" in train.status.value


def test_closing_the_dock_stops_training(docks, qtbot):
    viewer, annotate, train, _ = docks
    image, _, mask = _particles(viewer, annotate)
    set_train_form(train, image_layers=[image], mask_layer=mask, seconds=600, epochs=None)
    start = n_records()
    train.start_btn.clicked()
    qtbot.waitUntil(lambda: train.job.records >= 1, timeout=120_000)
    job = train.job
    viewer.window.remove_dock_widget(train.native)
    train.native.deleteLater()
    qtbot.waitUntil(lambda: not job.running, timeout=60_000)
    assert job.stopping and job.error is None
    assert errors_since(start) == []  # no noise from callbacks into the closed dock


def test_intensity_normalisation_choice_reaches_the_config(docks):
    _, _, train, _ = docks
    assert train.train_config().intensity_norm == "dataset"
    train.intensity_norm.value = "image"
    assert train.train_config().intensity_norm == "image"


def test_norm_layer_choice_reaches_the_model_config(docks):
    _, _, train, _ = docks
    # auto, small-unet: resolved when the class count is known (instance for binary models)
    assert train.model_config().norm_layer == "auto"
    assert train.model_config().resolved().norm_layer == "instance"
    train.norm_layer.value = "batch"
    assert train.model_config().norm_layer == "batch"
    train.arch.value = "Unet"  # smp: norm layer and base width mean nothing, the encoder does
    assert train.norm_layer.native.isHidden() and not train.encoder.native.isHidden()
    mcfg = train.model_config()
    assert mcfg.norm_layer == "batch" and mcfg.base_width is None and mcfg.encoder == "resnet18"
    train.arch.value = "small-unet"
    assert not train.norm_layer.native.isHidden() and train.model_config().encoder is None


def test_depth_choice_reaches_the_model_config_where_it_applies(docks):
    _, _, train, _ = docks
    assert train.model_config().depth is None and train.depth.native.text() == "auto"
    train.depth.value = 5
    assert train.model_config().depth == 5
    train.arch.value = "resunet"  # no depth option there: hidden, and left on auto
    assert train.depth.native.isHidden() and train.model_config().depth is None
    train.arch.value = "small-unet"
    assert not train.depth.native.isHidden() and train.model_config().depth == 5
    train.depth.value = train.depth.min
    assert train.model_config().depth is None


def test_save_button_goes_through_the_file_dialog(docks, monkeypatch, tmp_path):
    from qtpy.QtWidgets import QFileDialog

    from napari_temseg.core.modelfile.format import load_model

    _, _, train, _ = docks
    train.model = tiny_model()
    asked = []

    def choose(parent, title, name, filt):
        asked.append((name, filt))
        return str(tmp_path / "my model"), filt

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(choose))
    start = n_records()
    train.save_btn.clicked()
    saved = tmp_path / "my model.safetensors"
    assert asked and asked[0][0].endswith(".safetensors") and "*.safetensors" in asked[0][1]
    assert saved.is_file() and load_model(saved).model_cfg.base_width == 4
    assert train.status.value == f"Saved {saved}"
    export_as = lambda *a: (str(tmp_path / "for fiji"), "ONNX (*.onnx)")  # noqa: E731
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(export_as))
    train.save_btn.clicked()  # an export type chosen, the name typed without its ending
    assert (tmp_path / "for fiji.onnx").is_file() and train.status.value.startswith("Exported")
    (tmp_path / "for fiji.onnx").unlink()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a: ("", "")))
    train.status.value = "unchanged"
    train.save_btn.clicked()  # the user cancelled: nothing written, nothing said
    assert train.status.value == "unchanged" and [p.name for p in tmp_path.iterdir()] == [
        saved.name
    ]
    assert errors_since(start) == []
