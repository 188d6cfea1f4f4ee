"""The house rules of src/: no import cycle, no back doors into private names, api.py
independent of the docks. Read from the source with ast, so they hold for every module,
including imports inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

import napari_temseg

PKG = Path(napari_temseg.__file__).parent
ROOT = PKG.parent  # src/


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _sources() -> dict[str, tuple[Path, ast.Module]]:
    return {_module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in PKG.rglob("*.py")}


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(
    mod: str, path: Path, tree: ast.Module, known: set[str]
) -> list[tuple[str, list[str]]]:
    """(imported module, names imported from it) for every import statement of ``mod``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(mod, _is_package(path), node)
            names = []
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in known:  # `from . import layers`: the submodule itself
                    out.append((sub, []))
                else:
                    names.append(a.name)
            if names:
                out.append((target, names))
    return out


def import_graph(sources: dict) -> dict[str, set[str]]:
    known = set(sources)
    graph = {m: set() for m in sources}
    for mod, (path, tree) in sources.items():
        for target, _ in _imports(mod, path, tree, known):
            if target in known and target != mod:
                graph[mod].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_cycle_in_src():
    cycle = find_cycle(import_graph(_sources()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_no_module_imports_a_private_name_of_another():
    """No `from x import _name`, no `import x._y`, no `module._name` on an imported module."""
    sources = _sources()
    known = set(sources)
    bad = []
    for mod, (path, tree) in sources.items():
        aliases = {}
        for target, names in _imports(mod, path, tree, known):
            private_parts = [
                p for p in target.split(".") if p.startswith("_") and not p.startswith("__")
            ]
            if target.startswith("napari_temseg") and set(private_parts) - {
                "_widgets",
                "_sample_data",
            }:
                bad.append(f"{mod}: imports {target}")
            bad += [
                f"{mod}: imports {target}.{n}"
                for n in names
                if n.startswith("_") and not n.startswith("__")
            ]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.Import):
                for a in node.names:
                    aliases[(a.asname or a.name).split(".")[0]] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(f"{mod}: uses {node.value.id}.{node.attr}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_only_the_docks_import_the_docks():
    """api.py, cli/, core/ and adapters/ work without the dock package (_widgets)."""
    sources = _sources()
    known = set(sources)
    bad = [
        f"{mod} imports {target}"
        for mod, (path, tree) in sources.items()
        if not mod.startswith("napari_temseg._widgets")
        for target, _ in _imports(mod, path, tree, known)
        if "_widgets" in target
    ]
    assert not bad, bad


def test_private_import_check_can_fail(tmp_path):
    tree = ast.parse("from napari_temseg.core.data.write import _suffix\nfrom . import x\nx._y()\n")
    found = _imports(
        "napari_temseg.cli.predict", tmp_path / "predict.py", tree, {"napari_temseg.cli.x"}
    )
    assert ("napari_temseg.core.data.write", ["_suffix"]) in found and (
        "napari_temseg.cli.x",
        [],
    ) in found
