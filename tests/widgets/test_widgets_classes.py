"""Class tables of mask layers: the pure helpers (adapters/classes.py, no Qt) and the class
list of the Annotate dock (add, rename, recolour, remove, select, sparse values, colours)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from _widget_helpers import blobs, errors_since, n_records

from napari_temseg.adapters import classes as C
from napari_temseg.core.config.classes import ClassTable, default_colors
from napari_temseg.core.errors import InputError


def fake_layer(data, table=None):
    meta = {C.CLASSES_KEY: table.to_dict()} if table else {}
    layer = SimpleNamespace(data=data, metadata=meta, name="m", refreshed=0)
    layer.refresh = lambda: setattr(layer, "refreshed", layer.refreshed + 1)
    return layer


PHASES = ClassTable(("matrix", "pores", "grains"), ("#404040", "#1f77b4", "#ff7f0e"))


# --- pure helpers -----------------------------------------------------------------------------
def test_table_of_a_layer_and_round_trip():
    assert C.table_of(None) == ClassTable.default(2)
    layer = fake_layer(np.zeros((2, 4, 4), np.uint8))
    assert not C.has_table(layer) and C.table_of(layer).names == ("background", "foreground")
    C.store(layer, PHASES)
    assert layer.metadata["temseg_classes"] == {
        "names": ["matrix", "pores", "grains"],
        "colors": ["#404040", "#1f77b4", "#ff7f0e"],
    }
    assert C.has_table(layer) and C.table_of(layer) == PHASES
    layer.metadata[C.CLASSES_KEY] = {"names": ["only one"]}  # broken: binary default
    assert C.table_of(layer) == ClassTable.default(2)


def test_color_dict_dense_sparse_and_binary_default():
    assert C.color_dict(ClassTable.default(2), False) is None  # napari's own label colours
    assert C.color_dict(ClassTable.default(2), True) == C.SPARSE_COLORS
    dense = C.color_dict(PHASES, False)
    assert dense == {None: "transparent", 0: "transparent", 1: "#1f77b4", 2: "#ff7f0e"}
    sparse = C.color_dict(PHASES, True)
    assert sparse == {
        None: "transparent",
        0: "transparent",
        1: "#1f77b4",
        2: "#ff7f0e",
        3: "#404040",  # background scribbles (K = 3) get the background colour
    }
    recoloured = C.recolored(ClassTable.default(2), 1, "#00ff00")
    assert C.color_dict(recoloured, False)[1] == "#00ff00"


def test_hints_and_item_texts():
    binary = ClassTable.default(2)
    assert C.hint(binary, False) == C.DENSE_HINT and C.hint(binary, True) == C.SPARSE_HINT
    assert C.sparse_label(binary) == C.SPARSE_LABEL
    assert C.hint(PHASES, False) == (
        "Dense mask: paint 1 = pores, 2 = grains; unpainted = matrix (background). "
        "Paint whole slices."
    )
    assert PHASES.describe(True) in C.hint(PHASES, True)
    assert "3 = matrix" in C.sparse_label(PHASES)
    assert [C.item_text(PHASES, c, False) for c in range(3)] == [
        "0: matrix (background)",
        "1: pores",
        "2: grains",
    ]
    assert C.item_text(PHASES, 0, True) == "3: matrix (background)"


def test_table_edits():
    t = C.with_class(ClassTable.default(2))
    assert t.names == ("background", "foreground", "class 2") and t.colors == default_colors(3)
    assert C.with_class(C.renamed(t, 1, "class 3")).names[-1] == "class 4"  # a free name
    assert C.renamed(t, 2, "pores").names == ("background", "foreground", "pores")
    assert C.recolored(t, 2, "#123456").colors[2] == "#123456"
    assert C.without_last(t) == ClassTable.default(2)
    with pytest.raises(ValueError, match="differ"):
        C.renamed(t, 2, "foreground")


def test_add_class_to_a_sparse_layer_moves_background_scribbles():
    data = np.array([[0, 1, 2, 2]], np.uint8)  # binary sparse: 2 = background
    layer = fake_layer(data)
    table, msg = C.add_class(layer, sparse=True)
    assert table.k == 3 and C.table_of(layer) == table
    assert data.tolist() == [[0, 1, 3, 3]] and "moved from label 2 to 3" in msg
    # dense: nothing moves
    dense = fake_layer(np.array([[0, 1, 1]], np.uint8))
    C.add_class(dense, sparse=False)
    assert dense.data.tolist() == [[0, 1, 1]] and dense.refreshed == 0
    # a value the new class would take is refused, nothing changes
    odd = fake_layer(np.array([[2, 3]], np.uint8))
    with pytest.raises(InputError, match="label 3"):
        C.add_class(odd, sparse=True)
    assert odd.data.tolist() == [[2, 3]] and not C.has_table(odd)


def test_remove_class_refuses_painted_middle_and_background():
    layer = fake_layer(np.array([[0, 1, 2, 3]], np.uint8), PHASES)  # sparse: 3 = background
    with pytest.raises(InputError, match="painted pixels"):
        C.remove_class(layer, 2, sparse=True)
    with pytest.raises(InputError, match="only the last class"):
        C.remove_class(layer, 1, sparse=True)
    with pytest.raises(InputError, match="background"):
        C.remove_class(layer, 0, sparse=True)
    assert C.table_of(layer) == PHASES and layer.data.tolist() == [[0, 1, 2, 3]]
    layer.data[0, 2] = 0  # erase class 2
    table, msg = C.remove_class(layer, 2, sparse=True)
    assert table.names == ("matrix", "pores") and C.table_of(layer) == table
    assert layer.data.tolist() == [[0, 1, 0, 2]] and "moved from label 3 to 2" in msg
    with pytest.raises(InputError, match="at least two"):
        C.remove_class(layer, 1, sparse=True)


# --- the dock ---------------------------------------------------------------------------------
@pytest.fixture
def dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-temseg", "Annotate")
    img, _ = blobs((3, 40, 40))
    w.image.value = viewer.add_image(img, name="em")
    w.new_mask.clicked()
    return viewer, w, viewer.layers["em mask"]


def rows(w):
    return [w.class_list.item(i).text() for i in range(w.class_list.count())]


def swatch(w, i):
    """The swatch colour of row ``i`` as RGB floats (the screen may hold 16-bit colour)."""
    c = w.class_list.item(i).icon().pixmap(8, 8).toImage().pixelColor(4, 4)
    return np.array([c.redF(), c.greenF(), c.blueF()])


def rgb(color):
    if isinstance(color, str):
        return np.array([int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return np.asarray(color)[:3]


def same_color(a, b):
    return np.allclose(rgb(a), rgb(b), atol=10 / 255)


def colors_of(layer, values):
    return layer.colormap.map(np.array(values))


@pytest.mark.gui
@pytest.mark.filterwarnings("error:Private attribute access:FutureWarning")
def test_new_mask_shows_binary_default(dock):
    viewer, w, mask = dock
    assert rows(w) == ["0: background (background)", "1: foreground"]
    assert mask.metadata["temseg_classes"]["names"] == ["background", "foreground"]
    assert w.class_list.currentRow() == 1 and mask.selected_label == 1
    assert w.hint.value == C.DENSE_HINT and w.sparse.text == C.SPARSE_LABEL
    # binary masks keep napari's own label colours; the swatch shows what napari paints
    assert same_color(swatch(w, 1), colors_of(mask, [1])[0])
    assert same_color(swatch(w, 0), default_colors(2)[0])
    w.sparse.value = True
    assert same_color(swatch(w, 1), "#ff00ff") and same_color(swatch(w, 0), "#00ffff")
    assert same_color(colors_of(mask, [2])[0], "#00ffff")


@pytest.mark.gui
@pytest.mark.filterwarnings("error:Private attribute access:FutureWarning")
def test_add_rename_recolour_and_colormap(dock, monkeypatch):
    from qtpy.QtGui import QColor
    from qtpy.QtWidgets import QColorDialog, QInputDialog

    viewer, w, mask = dock
    w.add_class.clicked()
    w.add_class.clicked()
    assert rows(w)[2:] == ["2: class 2", "3: class 3"]
    assert mask.selected_label == 3 and w.class_list.currentRow() == 3
    w.class_list.setCurrentRow(2)
    assert mask.selected_label == 2
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("pores", True)))
    w.rename_class.clicked()
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *a, **k: QColor("#123456")))
    w.color_class.clicked()
    assert rows(w)[2] == "2: pores" and same_color(swatch(w, 2), "#123456")
    table = C.table_of(mask)
    assert table.names == ("background", "foreground", "pores", "class 3")
    assert table.colors[2] == "#123456"
    assert "2 = pores" in w.hint.value and "unpainted = background" in w.hint.value
    # napari colours follow the table; dense background stays transparent
    got = colors_of(mask, [0, 1, 2, 3])
    want = [table.colors[c] for c in (1, 2, 3)]
    assert got[0][3] == 0
    for rgba, hexc in zip(got[1:], want, strict=True):
        assert np.allclose(rgba[:3], rgb(hexc), atol=1e-3)
    # cancelled dialogs change nothing
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("", False)))
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *a, **k: QColor()))
    w.rename_class.clicked()
    w.color_class.clicked()
    assert C.table_of(mask) == table


@pytest.mark.gui
@pytest.mark.filterwarnings("error:Private attribute access:FutureWarning")
def test_list_follows_napari_label_box_and_sparse_values(dock):
    viewer, w, mask = dock
    w.add_class.clicked()  # K = 3
    mask.selected_label = 2
    assert w.class_list.currentRow() == 2
    mask.selected_label = 7  # not a class: nothing selected
    assert w.class_list.currentRow() == -1
    w.class_list.setCurrentRow(0)
    assert mask.selected_label == 0  # dense background
    w.sparse.value = True
    assert mask.selected_label == 3 and w.class_list.currentRow() == 0  # background = K
    assert rows(w) == ["3: background (background)", "1: foreground", "2: class 2"]
    assert w.hint.value.startswith("Sparse scribbles: 1 = foreground, 2 = class 2, 3 = background")
    w.class_list.setCurrentRow(1)
    assert mask.selected_label == 1
    c0, c3 = colors_of(mask, [0, 3])
    assert c0[3] == 0 and c3[3] > 0  # unlabelled transparent, background scribbles shown
    w.sparse.value = False
    assert rows(w)[0] == "0: background (background)" and mask.selected_label == 1


@pytest.mark.gui
@pytest.mark.filterwarnings("error:Private attribute access:FutureWarning")
def test_adding_in_sparse_mode_moves_background_scribbles(dock):
    viewer, w, mask = dock
    w.sparse.value = True
    mask.data[0, :2, :2] = 2  # binary background scribbles
    w.add_class.clicked()
    assert np.all(mask.data[0, :2, :2] == 3) and (mask.data == 2).sum() == 0
    assert rows(w)[0] == "3: background (background)"


@pytest.mark.gui
@pytest.mark.filterwarnings("error:Private attribute access:FutureWarning")
def test_removing_a_painted_class_is_refused(dock):
    viewer, w, mask = dock
    w.add_class.clicked()
    w.add_class.clicked()  # K = 4
    mask.data[1, 5:8, 5:8] = 3
    start = n_records()
    w.class_list.setCurrentRow(3)
    w.remove_class.clicked()
    msgs = errors_since(start)
    assert msgs and "painted pixels" in msgs[-1] and C.table_of(mask).k == 4
    w.class_list.setCurrentRow(2)  # not the last class
    w.remove_class.clicked()
    assert "only the last class" in errors_since(start)[-1] and len(rows(w)) == 4
    w.class_list.setCurrentRow(0)
    w.remove_class.clicked()
    assert "background" in errors_since(start)[-1] and len(rows(w)) == 4
    mask.data[:] = 0
    w.class_list.setCurrentRow(3)
    w.remove_class.clicked()
    assert len(rows(w)) == 3 and C.table_of(mask).k == 3 and mask.selected_label == 2
    assert (mask.data == 3).sum() == 0


@pytest.mark.gui
@pytest.mark.filterwarnings("error:Private attribute access:FutureWarning")
def test_existing_table_is_shown_and_round_trips(make_napari_viewer):
    from napari_temseg._sample_data import phases_sample

    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-temseg", "Annotate")
    (_, _, _), (labels, kwargs, _) = phases_sample()
    other = viewer.add_labels(np.zeros((2, 8, 8), np.uint8), name="plain")
    gt = viewer.add_labels(labels, **kwargs)
    w.reset_choices()
    w.mask.value = gt
    assert rows(w) == [
        "0: matrix (background)",
        "1: pores",
        "2: unhydrated grains",
        "3: hydration products",
    ]
    assert same_color(swatch(w, 1), "#1f77b4") and same_color(swatch(w, 0), "#404040")
    assert "1 = pores" in w.hint.value and "unpainted = matrix (background)" in w.hint.value
    w.class_list.setCurrentRow(2)
    assert gt.selected_label == 2
    # switching masks shows each layer's own table, and back
    w.mask.value = other
    assert rows(w) == ["0: background (background)", "1: foreground"]
    w.mask.value = gt
    assert len(rows(w)) == 4 and w.class_list.currentRow() == 2
    # the table on the layer is what the rest of the plugin reads
    from napari_temseg.core.config.classes import ClassTable as CT

    assert CT.from_dict(gt.metadata["temseg_classes"]).names[3] == "hydration products"


@pytest.mark.gui
@pytest.mark.filterwarnings("error:Private attribute access:FutureWarning")
def test_class_buttons_without_mask_say_so(make_napari_viewer):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-temseg", "Annotate")
    start = n_records()
    w.add_class.clicked()
    msgs = errors_since(start)
    assert msgs and "no mask layer" in msgs[-1]
    assert rows(w) == ["0: background (background)", "1: foreground"]


@pytest.mark.gui
@pytest.mark.filterwarnings("error:Private attribute access:FutureWarning")
def test_paint_two_classes_and_background_then_train(make_napari_viewer):
    """The whole multi-class annotation path in a real window: sparse mode, a third class,
    brush strokes of each class picked in the class list, then training on that layer."""
    from napari_temseg import api
    from napari_temseg.core.data.synthetic.phases import make_phases

    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-temseg", "Annotate")
    img, truth = make_phases((1, 64, 64), channels=1, seed=5)
    image = viewer.add_image(img[0, 0], name="em")
    w.image.value = image
    w.new_mask.clicked()
    mask = viewer.layers["em mask"]
    w.sparse.value = True
    w.add_class.clicked()  # background, foreground, class 2: K = 3, background painted with 3
    mask.brush_size = 3
    for row, value in ((1, 1), (2, 2), (0, 3)):
        w.class_list.setCurrentRow(row)
        assert mask.selected_label == value
        ys, xs = np.nonzero(truth[0] == row)
        for i in np.linspace(0, len(ys) - 1, 6).astype(int):
            mask.paint((ys[i], xs[i]), mask.selected_label)
    painted = np.asarray(mask.data)
    assert set(np.unique(painted)) == {0, 1, 2, 3} and (painted == 0).mean() > 0.5
    model = api.train(
        image,
        mask,
        epochs=1,
        seconds=None,
        steps_per_epoch=2,
        patch=64,
        device="cpu",
        verbose=False,
    )
    assert model.train_cfg.sparse and model.classes.k == 3  # both from the mask layer
    assert model.classes.names == C.table_of(mask).names
