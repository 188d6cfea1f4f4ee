"""Import hygiene: the headless core never pulls in a GUI, and the CLI starts without torch.

Each check runs in a fresh interpreter so modules imported by other tests do not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import napari_temseg

PKG = Path(napari_temseg.__file__).parent
GUI_MODULES = (
    "qtpy",
    "napari",
    "magicgui",
    "PySide6",
    "PySide2",
    "PyQt5",
    "PyQt6",
    "vispy",
    "superqt",
)
HEAVY_MODULES = ("torch", "segmentation_models_pytorch", "kornia", "skimage")


def imported_after(code: str) -> set[str]:
    """Top-level module names present in sys.modules after running ``code`` in a subprocess."""
    probe = (
        code
        + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def core_modules() -> list[str]:
    """Every module and package of core/, at any depth."""
    core = PKG / "core"
    names = sorted(
        ".".join(p.relative_to(core).with_suffix("").parts).removesuffix("__init__").rstrip(".")
        for p in core.rglob("*.py")
    )
    assert {"config", "config.train", "data.volume", "errors", "progress"} <= set(names)
    return [f"napari_temseg.core.{n}".rstrip(".") for n in names]


def test_core_and_cli_import_no_gui_toolkit():
    cli = [f"napari_temseg.cli.{p.stem}" for p in (PKG / "cli").glob("*.py") if p.stem[:2] != "__"]
    assert {"napari_temseg.cli.options", "napari_temseg.cli.train"} <= set(cli)
    mods = [
        "napari_temseg.core",
        *core_modules(),
        "napari_temseg.cli",
        *cli,
        "napari_temseg.api",
        "napari_temseg.adapters.layers",
        "napari_temseg.adapters.runtime",
    ]
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in mods)
    leaked = sorted(set(GUI_MODULES) & imported_after(code))
    assert not leaked, f"importing {mods} pulled in GUI modules {leaked}: core must stay headless"


def test_package_and_cli_start_without_torch():
    code = (
        "import napari_temseg, napari_temseg.cli, napari_temseg.api, napari_temseg._sample_data\n"
        "napari_temseg.cli.build_parser()  # what `temseg --help` does\n"
    )
    leaked = sorted(set(HEAVY_MODULES) & imported_after(code))
    assert not leaked, (
        f"`import napari_temseg` / `temseg --help` imported {leaked}: "
        "move those imports into functions"
    )


def test_probe_sees_what_was_imported():
    """The probe can fail: a module imported by the code under test shows up in its answer."""
    seen = imported_after("import napari_temseg.core.data.synthetic.fibsem\nimport colorsys")
    assert {"numpy", "napari_temseg", "colorsys"} <= seen and "torch" not in seen
