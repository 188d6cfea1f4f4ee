"""A real napari viewer opens the plugin's sample data and docks through the manifest."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

DOCKS = ["Annotate", "Train", "Predict", "Evaluate"]


def test_fibsem_sample_opens_as_two_channels_and_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer(show=True)  # a hidden window's canvas is never drawn
    viewer.open_sample("napari-temseg", "fibsem")
    layers = {la.name: la for la in viewer.layers}
    assert set(layers) == {"fibsem ICE", "fibsem TLD", "fibsem ground truth"}
    ice, tld, gt = layers["fibsem ICE"], layers["fibsem TLD"], layers["fibsem ground truth"]
    assert ice._type_string == "image" and gt._type_string == "labels"
    assert ice.data.shape == tld.data.shape == gt.data.shape == (16, 384, 384)
    assert viewer.dims.ndim == 3  # mask and channels share the Z slider
    assert not np.array_equal(ice.data[0], tld.data[0])
    assert set(np.unique(gt.data).tolist()) == {0, 1}
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].std() > 10  # something was really drawn (not a blank canvas)


def test_particles_sample_opens(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-temseg", "particles")
    names = [la.name for la in viewer.layers]
    assert names == ["particles", "particles ground truth"]
    img, gt = viewer.layers["particles"], viewer.layers["particles ground truth"]
    assert img.data.shape == gt.data.shape == (512, 512)
    assert img.data[gt.data > 0].mean() < img.data[gt.data == 0].mean()


@pytest.mark.parametrize("name", DOCKS)
def test_dock_opens_from_the_manifest(make_napari_viewer, name):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-temseg", "particles")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-temseg", name)
    assert type(widget).__name__ == f"{name}Widget"  # this dock's widget, not another dock's
    native = getattr(widget, "native", widget)
    assert not native.isHidden() and not dock.isHidden()
    assert any(name in key for key in viewer.window.dock_widgets)
