"""docs/architecture.md's module map is generated from the docstrings and never stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    path = ROOT / "docs" / "scripts" / "make_architecture.py"
    spec = importlib.util.spec_from_file_location("make_architecture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_module_map_lists_every_module_and_nothing_that_is_gone():
    script = _script()
    doc = script.DOC.read_text()
    assert script.render(doc) == doc, (
        "docs/architecture.md is stale: run python docs/scripts/make_architecture.py"
    )
    mapped = doc.split(script.BEGIN)[1].split(script.END)[0]
    for path in (ROOT / "src" / "napari_temseg").rglob("*.py"):
        name = path.parent.name + "/" if path.name == "__init__.py" else path.name
        assert name in mapped, f"{path} is missing from docs/architecture.md"


def test_the_check_sees_a_stale_map(tmp_path, monkeypatch):
    script = _script()
    doc = script.DOC.read_text().replace("progress.py", "progres.py", 1)
    stale = tmp_path / "architecture.md"
    stale.write_text(doc)
    monkeypatch.setattr(script, "DOC", stale)
    assert script.main(["--check"]) == 1
