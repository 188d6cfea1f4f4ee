"""One home for what a prediction writes (shapes, dtypes) and for the model-vs-input checks."""

import numpy as np
import pytest

from napari_temseg.core.config.classes import ClassTable
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.data.volume import check_channels
from napari_temseg.core.errors import InputError
from napari_temseg.core.inference.outputs import check_instances, output_specs


def _specs(spatial, k=2, **cfg):
    return {o.name: (o.shape, o.dtype) for o in output_specs(spatial, PredictConfig(**cfg), k)}


def test_binary_outputs_have_the_image_shape():
    assert _specs((3, 20, 30)) == {
        "probability": ((3, 20, 30), np.float32),
        "labels": ((3, 20, 30), np.uint8),
    }
    assert _specs((20, 30), tta=True, uncertainty=True, prob_dtype="uint8") == {
        "probability": ((20, 30), np.uint8),
        "labels": ((20, 30), np.uint8),
        "uncertainty": ((20, 30), np.float32),
    }
    assert _specs((2, 8, 8), instances=True)["labels"] == ((2, 8, 8), np.uint32)


def test_k_classes_get_a_class_axis_before_y_and_compact_probabilities():
    specs = _specs((3, 20, 30), k=4)
    assert specs["probability"] == ((3, 4, 20, 30), np.float16)
    assert specs["labels"] == ((3, 20, 30), np.uint8)
    assert _specs((20, 30), k=3)["probability"][0] == (3, 20, 30)


def test_every_front_end_allocates_what_the_core_says():
    """The docks' and the console's arrays (adapters/outputs.py) follow output_specs."""
    from napari_temseg.adapters.outputs import output_arrays

    cfg = PredictConfig(tta=True, uncertainty=True, prob_dtype="uint8")
    prob, labels, unc, folder = output_arrays((2, 10, 12), cfg, k=3)
    want = output_specs((2, 10, 12), cfg, 3)
    assert folder is None
    assert [(a.shape, a.dtype) for a in (prob, labels, unc)] == [(o.shape, o.dtype) for o in want]


def test_the_channel_check_names_the_fix():
    check_channels(2, 2)
    with pytest.raises(InputError) as e:
        check_channels(2, 1, "'a.tif'", "choose another image")
    assert str(e.value) == "the model expects 2 channel(s) but 'a.tif' has 1: choose another image"
    assert "\n" not in str(e.value)


def test_instance_labels_are_for_binary_models():
    cfg = PredictConfig(instances=True)
    check_instances(cfg, ClassTable.default(2))
    check_instances(PredictConfig(), ClassTable(("a", "b", "c")))
    with pytest.raises(InputError, match=r"binary models; .* 3 classes \(a, b, c\): turn"):
        check_instances(cfg, ClassTable(("a", "b", "c")))
