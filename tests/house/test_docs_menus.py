"""The menu paths the README and the docs name are the ones a real napari window shows.

napari titles the plugin's submenus with the manifest's ``display_name`` (not the package
name), and because the manifest also contributes a menu (Layers ▸ Segment), it lists each
dock as "<widget> (<display_name>)". The docs write menu paths in bold with ``▸`` between
the levels (**Plugins ▸ X ▸ Y**); every such path must exist in the window's menu bar.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "docs/user-guide.md", "docs/api.md"]
PLUGIN = "napari-temseg"
SEP = "▸"
DOCK_COMMANDS = [
    f"{PLUGIN}.make_{w}_widget" for w in ("annotate", "train", "predict", "evaluate", "measure")
]
SAMPLE_COMMANDS = [f"{PLUGIN}.fibsem", f"{PLUGIN}.particles"]


def _label(text: str) -> str:
    """A QAction's text as the user reads it: no '&' accelerators, no shortcut after a tab."""
    text = text.split("\t")[0].replace("&&", "\0").replace("&", "").replace("\0", "&")
    return " ".join(text.split())


def _walk(menu, path, nodes, commands):
    menu.aboutToShow.emit()  # app-model menus update visibility / dynamic items here
    for action in menu.actions():
        if action.isSeparator() or not action.isVisible():
            continue
        here = (*path, _label(action.text()))
        nodes.add(here)
        sub = action.menu()
        if sub is not None:
            _walk(sub, here, nodes, commands)
        else:
            command = getattr(action, "_command_id", None)  # app-model QCommandAction
            if command:
                commands.setdefault(command, []).append(here)


def real_menus(viewer):
    """(every menu / item path in the menu bar, {command id: [item paths]})."""
    nodes: set[tuple[str, ...]] = set()
    commands: dict[str, list[tuple[str, ...]]] = {}
    for action in viewer.window._qt_window.menuBar().actions():
        top = (_label(action.text()),)
        nodes.add(top)
        _walk(action.menu(), top, nodes, commands)
    return nodes, commands


def bold_spans(doc: str) -> list[str]:
    """Every **bold** span of a Markdown file (code blocks left out), whitespace-normalised."""
    text = re.sub(r"```.*?```", "", (ROOT / doc).read_text(encoding="utf-8"), flags=re.S)
    return [" ".join(s.split()) for s in re.findall(r"\*\*(.+?)\*\*", text, flags=re.S)]


def menu_paths(doc: str, top_menus: set[str]) -> list[tuple[str, ...]]:
    """The bold spans of a doc that are menu-bar paths, e.g. ('Plugins', 'X', 'Y')."""
    paths = []
    for span in bold_spans(doc):
        parts = tuple(p.strip() for p in span.split(SEP))
        if len(parts) > 1 and parts[0] in top_menus:
            paths.append(parts)
        else:  # a menu path written with another separator would escape the check
            assert not re.match(
                rf"({'|'.join(map(re.escape, top_menus))})\s*(>|→|»|›|/|\|)\s*\w", span
            ), f"{doc}: write menu paths with ' {SEP} ': **{span}**"
    return paths


@pytest.fixture
def menus(make_napari_viewer):
    viewer = make_napari_viewer()
    nodes, commands = real_menus(viewer)
    return {p[0] for p in nodes if len(p) == 1}, nodes, commands


def test_every_contribution_is_in_the_menus(menus):
    _, _, commands = menus
    for command in DOCK_COMMANDS:
        assert any(p[0] == "Plugins" for p in commands.get(command, [])), command
    for command in SAMPLE_COMMANDS:
        assert any(p[:2] == ("File", "Open Sample") for p in commands.get(command, [])), command


@pytest.mark.parametrize("doc", DOCS)
def test_menu_paths_in_the_docs_exist(menus, doc):
    top, nodes, commands = menus
    named = menu_paths(doc, top)
    missing = [f" {SEP} ".join(p) for p in named if p not in nodes]
    real = sorted(
        f" {SEP} ".join(p) for c, ps in commands.items() if c.startswith(PLUGIN + ".") for p in ps
    )
    assert not missing, f"{doc} names menus napari does not show: {missing}; the plugin's: {real}"
    if doc != "docs/api.md":  # README and user guide: both the docks' and the samples' menu
        plugin_paths = [p for c in DOCK_COMMANDS + SAMPLE_COMMANDS for p in commands[c]]
        for first in ("Plugins", "File"):
            assert any(
                p[0] == first and any(q[: len(p)] == p for q in plugin_paths) for p in named
            ), f"{doc} names no {first} menu path of the plugin"


def test_user_guide_names_every_dock(menus):
    """For each dock: its whole menu path, or its submenu's path and napari's item title."""
    _, _, commands = menus
    spans = set(bold_spans("docs/user-guide.md"))
    for command in DOCK_COMMANDS:
        (path,) = [p for p in commands[command] if p[0] == "Plugins"]
        full, parent = f" {SEP} ".join(path), f" {SEP} ".join(path[:-1])
        assert full in spans or (parent in spans and path[-1] in spans), (
            f"the user guide does not name **{full}** (or **{parent}** and **{path[-1]}**)"
        )
