"""Every Python name and source path the docs cite exists, so the docs cannot drift.

Checked: ``from napari_temseg... import a, b`` lines and dotted ``napari_temseg.x.y`` names
in README.md and docs/*.md (docs/experiments/ holds dated notes and is left as written),
and ``core/.../x.py``-style paths.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "napari_temseg"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FROM_IMPORT = re.compile(r"^\s*from (napari_temseg[\w.]*) import ([\w, ]+)$", re.M)
DOTTED = re.compile(r"\bnapari_temseg(?:\.\w+)+")
PATH = re.compile(r"(?<![\w/])((?:core|cli|adapters|_widgets)/[\w/]*\w+\.py)\b")


def _resolves(dotted: str) -> bool:
    """A module, or an attribute chain below the longest importable module."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for name in parts[k:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def _cited(page: Path) -> list[str]:
    text = page.read_text()
    names = [f"{mod}.{n.strip()}" for mod, ns in FROM_IMPORT.findall(text) for n in ns.split(",")]
    return sorted(set(names) | set(DOTTED.findall(text)))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_cited_python_names_exist(page):
    missing = [n for n in _cited(page) if not _resolves(n)]
    assert not missing, f"{page.name} cites names that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_cited_source_paths_exist(page):
    missing = sorted({p for p in PATH.findall(page.read_text()) if not (PKG / p).exists()})
    assert not missing, f"{page.name} cites files that do not exist: {missing}"


def test_the_check_sees_a_name_that_is_gone():
    assert _resolves("napari_temseg.core.inference.predict_stack")
    assert not _resolves("napari_temseg.core.predict.predict_dask")
