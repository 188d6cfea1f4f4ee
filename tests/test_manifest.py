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
    assert pm.display_name and pm.contributions.commands


def test_installed_distribution_registers_the_manifest():
    pm = npe2.PluginManifest.from_distribution("napari-temseg")
    assert pm.name == "napari-temseg"
    assert [c.id for c in pm.contributions.commands] == [c.id for c in manifest().contributions.commands]


def test_contributions_reference_declared_commands():
    pm = manifest()
    ids = {c.id for c in pm.contributions.commands}
    used = [w.command for w in pm.contributions.widgets or []]
    used += [s.command for s in pm.contributions.sample_data or []]
    assert set(used) <= ids, sorted(set(used) - ids)
    assert {w.display_name for w in pm.contributions.widgets} == {"Annotate", "Train", "Predict", "Evaluate"}
    assert {s.key for s in pm.contributions.sample_data} == {"fibsem", "particles"}


@pytest.mark.parametrize("command", [c.python_name for c in manifest().contributions.commands])
def test_command_python_name_resolves_to_a_callable(command):
    assert callable(resolve(command)), command


def test_validate_imports_like_npe2_validate():
    """What `npe2 validate napari-temseg` checks: the manifest loads and all imports work."""
    pm = npe2.PluginManifest.from_distribution("napari-temseg")
    pm.validate_imports()
