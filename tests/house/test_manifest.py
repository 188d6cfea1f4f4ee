"""The npe2 manifest (napari.yaml) is valid, installed, and every command resolves to a callable."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import napari_temseg

npe2 = pytest.importorskip("npe2")
MANIFEST = Path(napari_temseg.__file__).parent / "napari.yaml"


def manifest():
    return npe2.PluginManifest.from_file(MANIFEST)  # schema validation (pydantic)


def resolve(python_name: str):
    module, _, attr = python_name.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def test_manifest_file_is_valid():
    pm = manifest()
    assert pm.name == "napari-temseg"
    assert pm.display_name == "TEM Segmentation with U-Net"
    ids = [c.id for c in pm.contributions.commands]
    assert len(ids) >= 6 and all(i.startswith("napari-temseg.") for i in ids)  # 4 docks + 3 samples


def test_installed_distribution_registers_the_manifest():
    pm = npe2.PluginManifest.from_distribution("napari-temseg")
    assert pm.name == "napari-temseg"
    assert [c.id for c in pm.contributions.commands] == [
        c.id for c in manifest().contributions.commands
    ]


def test_contributions_reference_declared_commands():
    pm = manifest()
    ids = {c.id for c in pm.contributions.commands}
    used = [w.command for w in pm.contributions.widgets or []]
    used += [s.command for s in pm.contributions.sample_data or []]
    assert set(used) <= ids, sorted(set(used) - ids)
    assert {w.display_name for w in pm.contributions.widgets} == {
        "Annotate",
        "Train",
        "Predict",
        "Evaluate",
        "Measure",
    }
    assert {s.key for s in pm.contributions.sample_data} == {"fibsem", "particles", "phases"}


@pytest.mark.parametrize("command", [c.python_name for c in manifest().contributions.commands])
def test_command_python_name_resolves_to_a_callable(command):
    assert callable(resolve(command)), command


def test_validate_imports_like_npe2_validate():
    """What `npe2 validate napari-temseg` checks: the manifest loads and all imports work."""
    pm = npe2.PluginManifest.from_distribution("napari-temseg")
    pm.validate_imports()


# exactly what napari's _instantiate_dock_widget accepts (napari/_qt/qt_main_window.py)
VIEWER_ANNOTATIONS = (
    "napari.viewer.Viewer",
    "napari.viewer.ViewerModel",
    "napari.components.ViewerModel",
    "napari.components.viewer_model.ViewerModel",
)


@pytest.mark.parametrize("widget", [w.command for w in manifest().contributions.widgets])
def test_widget_gets_the_viewer_from_napari(widget):
    """napari passes the viewer only to a parameter named ``napari_viewer``
    or annotated as a Viewer.
    """
    import inspect

    cmd = next(c for c in manifest().contributions.commands if c.id == widget)
    obj = resolve(cmd.python_name)
    sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    required = [
        p
        for p in sig.parameters.values()
        if p.name != "self"
        and p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    assert len(required) <= 1, f"{cmd.python_name}: napari fills at most one parameter (the viewer)"
    for p in required:
        ann = p.annotation
        if not isinstance(ann, str):  # a class: napari's own Viewer / ViewerModel
            ann = f"{getattr(ann, '__module__', '')}.{getattr(ann, '__qualname__', ann)}"
        ok = p.name == "napari_viewer" or ann in VIEWER_ANNOTATIONS
        assert ok, (
            f"{cmd.python_name}: napari cannot fill parameter '{p.name}: {ann}'; name it "
            "napari_viewer or annotate it 'napari.viewer.Viewer'"
        )
