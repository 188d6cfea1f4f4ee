"""The plan of core/: stage packages in a dependency order, public names, size limits.

Read from the source with ast (tests/house/test_structure.py's import graph), so the rules
hold for imports inside functions too. A new package must be given a rank below; a module
or function that outgrows the limits is split, or named in the allow-list with a reason.
"""

from __future__ import annotations

import ast
import importlib

import pytest
from test_structure import PKG, _imports, _sources, import_graph

CORE = "napari_temseg.core"
BASICS = {"errors", "progress", "device", "threads"}
# A package may import a package of a lower rank (and the basics), never one of its own or
# a higher rank. evaluation is numpy-only scoring, used by training and guidance alike.
# nets is lowest: its registry is the list of architectures config validates against, and
# it takes a ModelConfig as it comes (duck-typed), so it needs no config import.
RANK = {
    "nets": 0,
    "config": 1,
    "evaluation": 1,
    "data": 2,
    "modelfile": 4,
    "inference": 5,
    "interop": 5,
    "training": 6,
    "guidance": 7,
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# (module path under src/napari_temseg, function) -> why it stays long for now
LONG_FUNCTIONS = {
    ("core/inference/predict.py", "predict_stack"): "the streamed predictor's one generator",
    ("core/inference/distributed.py", "predict_dask"): "set-up, map, clean-up of one dask run",
    ("_widgets/predict.py", "__init__"): "the dock's widgets, laid out in order",
}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["napari_temseg", "core"] or len(parts) < 3:
        return None
    return parts[2]


def _packages(sources: dict) -> dict[str, object]:
    return {m: p for m, (p, _) in sources.items() if p.name == "__init__.py"}


def test_core_top_level_holds_only_the_stages_and_the_basics():
    top = {p.stem for p in (PKG / "core").glob("*.py")} - {"__init__"}
    assert top == BASICS, f"core/ top level: {sorted(top - BASICS)} belong in a stage package"
    stages = {p.name for p in (PKG / "core").iterdir() if (p / "__init__.py").exists()}
    assert stages == set(RANK), f"give {sorted(stages - set(RANK))} a rank in RANK"


def test_stage_packages_depend_only_on_lower_ranks():
    graph = import_graph(_sources())
    bad = []
    for mod, targets in graph.items():
        a = _stage(mod)
        if a not in RANK:
            continue
        for t in targets:
            b = _stage(t)
            if b in RANK and b != a and RANK[b] >= RANK[a]:
                bad.append(f"{mod} -> {t} ({a} rank {RANK[a]} -> {b} rank {RANK[b]})")
    assert not bad, "\n".join(sorted(bad))


def test_every_core_package_documents_and_lists_its_public_names():
    for mod, path in _packages(_sources()).items():
        if not mod.startswith(CORE):
            continue
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{mod}: the package needs a docstring saying its role"
        if mod == CORE:
            continue
        package = importlib.import_module(mod)
        names = getattr(package, "__all__", None)
        assert names, f"{mod}: list the public names in __all__"
        missing = [n for n in names if not hasattr(package, n)]
        assert not missing, f"{mod}.__all__ names what it does not define: {missing}"
        subs = {p.stem for p in path.parent.glob("*.py")} | {
            p.name for p in path.parent.iterdir() if (p / "__init__.py").exists()
        }
        clash = sorted(set(names) & subs)
        assert not clash, f"{mod} exports {clash}, which hide submodules of the same name"


def test_inside_core_names_come_from_their_module_not_a_package():
    sources = _sources()
    packages = set(_packages(sources))
    known = set(sources)
    bad = [
        f"{mod}: from {target} import {', '.join(names)}"
        for mod, (path, tree) in sources.items()
        if mod.startswith(CORE) and path.name != "__init__.py"
        for target, names in _imports(mod, path, tree, known)
        if target in packages and target.startswith(CORE) and names
    ]
    assert not bad, "import from the defining module:\n" + "\n".join(bad)


def _sizes(source: str):
    """(name, lines) of every function in ``source``, nested ones included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def test_modules_and_functions_stay_within_the_size_limits():
    too_long, seen = [], set()
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {len(source.splitlines())} lines (limit {MAX_MODULE_LINES})")
        for name, n in _sizes(source):
            if n > MAX_FUNCTION_LINES:
                seen.add((rel, name))
                if (rel, name) not in LONG_FUNCTIONS:
                    too_long.append(f"{rel}: {name}() {n} lines (limit {MAX_FUNCTION_LINES})")
    assert not too_long, "split these:\n" + "\n".join(too_long)
    stale = sorted(set(LONG_FUNCTIONS) - seen)
    assert not stale, f"these are short now: remove them from LONG_FUNCTIONS: {stale}"


@pytest.mark.parametrize("body, expected", [(1, 3), (70, 72)])
def test_the_size_counter_counts_whole_functions(body, expected):
    source = "def f(x):\n    '''doc'''\n" + "    x += 1\n" * body
    assert dict(_sizes(source))["f"] == expected
