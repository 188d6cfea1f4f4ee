"""Layers the plugin makes from an image carry the image's units as well as its scale:
otherwise napari warns "Inconsistent units across layers" and the scale bar loses its unit
(the training preview did, seen while making the screenshots)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_temseg.adapters import layers as L
from napari_temseg.adapters import outputs as O
from napari_temseg.adapters import suggest as S
from napari_temseg.core.config.classes import ClassTable
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.guidance.suggest import Region, SuggestResult


@pytest.fixture
def viewer():
    from napari.components import ViewerModel

    return ViewerModel()


def _consistent(viewer, unit: str) -> None:
    """napari's condition for its warning: the layers' world extent has no common units."""
    units = viewer.layers.extent.units
    assert units is not None, [(la.name, la.units) for la in viewer.layers]
    assert {str(u) for u in units} == {unit}


@pytest.mark.parametrize("shape", [(40, 50), (3, 40, 50)])
@pytest.mark.parametrize("k", [2, 3])
def test_training_preview_has_the_image_units(viewer, shape, k):
    nd = len(shape)
    image = viewer.add_image(
        np.zeros(shape, np.float32),
        name="em",
        scale=(40.0, 2.5, 2.5)[-nd:],
        translate=(0.0, 10.0, 20.0)[-nd:],
        units=("nm",) * nd,
    )
    prob = np.full((k, 40, 50) if k > 2 else (40, 50), 0.5, np.float32)
    layer = O.show_preview(viewer, image, None, "em", prob, z=shape[0] - 1 if nd == 3 else 0)
    assert tuple(layer.units) == tuple(image.units)
    assert tuple(layer.scale) == tuple(image.scale)
    if nd == 3:  # the one-slice preview sits at the slice shown
        assert layer.translate[0] == pytest.approx(2 * 40.0)
    _consistent(viewer, "nanometer")
    again = O.show_preview(viewer, image, None, "em", prob, z=0)  # refilled, same layer
    assert again is layer and tuple(again.units) == tuple(image.units)


def test_new_prediction_layer_keeps_the_units(viewer):
    image = viewer.add_image(
        np.zeros((2, 30, 40), np.float32), name="em", scale=(40, 2.5, 2.5), units="nm"
    )
    cfg = PredictConfig()
    prob, labels, _, _ = O.output_arrays((2, 30, 40), cfg)
    r = O.show_outputs(viewer, "em", prob, labels, **L.transform(image))
    assert tuple(r["labels_layer"].units) == tuple(image.units)
    r.update(labels=labels, classes=ClassTable.default(2))
    r["labels_layer"].paint((0, 1, 1), 1)  # the user edits it: theirs now
    O.new_labels_layer(viewer, r)  # the next threshold goes to a new layer
    assert r["labels_layer"].name == "em prediction (2)"
    assert tuple(r["labels_layer"].units) == tuple(image.units)
    _consistent(viewer, "nanometer")


@pytest.mark.parametrize("two_d", [True, False])
def test_suggestion_layers_have_the_image_units(viewer, two_d):
    shape = (128, 128) if two_d else (2, 128, 128)
    image = viewer.add_image(
        np.zeros(shape, np.float32), name="em", scale=(40, 2.0, 2.0)[-len(shape) :], units="nm"
    )
    res = SuggestResult(
        regions=[Region(rank=1, z=0, y=0, x=64, height=64, width=64, score=0.9)],
        score_map=np.full((1 if two_d else 2, 2, 2), 0.5, np.float32),
    )
    tr = L.transform(image)
    score = S.show_score_map(viewer, res, "em", tr, two_d)
    rects = S.show_regions(viewer, res, "em", tr, two_d)
    assert tuple(score.units) == tuple(image.units)
    assert tuple(rects.units) == tuple(image.units)
    _consistent(viewer, "nanometer")
