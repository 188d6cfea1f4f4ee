"""Suggested regions in napari: a Shapes layer of ranked rectangles, an uncertainty layer
under them, and moving the view to one of them (``core/guidance/suggest.py`` finds them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import TAG, find_ours, free_name, put_layer

ROLE = "suggestions"
COLOR = "#ffd700"


def _world(vals: np.ndarray, tr: dict, two_d: bool) -> np.ndarray:
    """(n, 3) (z, y, x) data coordinates -> the layer's world coordinates (2D: drop z)."""
    pts = np.asarray(vals, float)[:, 1:] if two_d else np.asarray(vals, float)
    scale = np.asarray(tr.get("scale", (1.0,) * pts.shape[1]), float)
    shift = np.asarray(tr.get("translate", (0.0,) * pts.shape[1]), float)
    return pts * scale + shift


def _units(tr: dict) -> dict:
    """``units=`` of the image (``layers.transform``), where napari has units."""
    return {"units": tr["units"]} if "units" in tr else {}


def show_regions(viewer: Any, result: Any, source: str, tr: dict, two_d: bool) -> Any:
    """``<source> suggestions``: one numbered rectangle per region (replaces ours only)."""
    old = find_ours(viewer, ROLE, source)
    if old is not None:
        viewer.layers.remove(old)
    regions = result.regions
    rects = [_world(r.corners(), tr, two_d) for r in regions]
    side = min((r.height for r in regions), default=64) * float(tr.get("scale", (1.0,))[-1])
    layer = viewer.add_shapes(
        rects or None,
        ndim=2 if two_d else 3,
        shape_type="rectangle",
        edge_color=COLOR,
        face_color="transparent",
        edge_width=max(1.0, side / 40),
        features={"rank": [r.rank for r in regions], "score": [r.score for r in regions]},
        text={"string": "{rank}", "color": COLOR, "anchor": "upper_left", "size": 14},
        name=free_name(viewer, f"{source} suggestions"),
        metadata={TAG: {"role": ROLE, "source": source}},
        **_units(tr),  # world coordinates (scale 1) in the image's units
    )
    layer.editable = False
    return layer


def show_score_map(viewer: Any, result: Any, source: str, tr: dict, two_d: bool) -> Any:
    """``<source> uncertainty (regions)``: each scored square's score, drawn on the grid."""
    size = result.regions[0].height if result.regions else 1
    m = result.score_map[0] if two_d else result.score_map
    scale = np.asarray(tr.get("scale", (1.0,) * m.ndim), float)
    block = np.array([1.0] * (m.ndim - 2) + [size, size])
    shift = np.asarray(tr.get("translate", (0.0,) * m.ndim), float)
    shift = shift + (block - 1) / 2 * scale * (block > 1)  # a block's centre on its pixels
    layer = put_layer(
        viewer,
        "image",
        np.nan_to_num(m, nan=0.0),
        role="uncertainty",
        source=source,
        name=f"{source} uncertainty (regions)",
        scale=tuple(scale * block),
        translate=tuple(shift),
        **_units(tr),
        colormap="magma",
        opacity=0.5,
        contrast_limits=(0.0, max(float(np.nanmax(m)) if np.isfinite(m).any() else 1.0, 1e-6)),
    )
    _just_above(viewer, layer, source)
    return layer


def _just_above(viewer: Any, layer: Any, source: str) -> None:
    """Put ``layer`` right above the image ``source`` (under masks and rectangles)."""
    names = [la.name for la in viewer.layers]
    if source in names:
        i, j = names.index(layer.name), names.index(source)
        viewer.layers.move(i, j + 1 if i > j else j)


def go_to(viewer: Any, region: Any, tr: dict, two_d: bool, mask: Any = None) -> None:
    """Show ``region``: its slice, centred and zoomed so that it fills 40 % of the canvas; then the
    mask layer selected in paint mode."""
    c = _world(np.asarray([region.center]), tr, two_d)[0]
    if not two_d:
        axis = viewer.dims.ndim - 3
        viewer.dims.set_point(axis, float(c[0]))
    cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari < 0.9
    viewer.reset_view()  # the whole image fits the canvas: zoom relative to that
    ext = np.asarray(viewer.layers.extent.world, float)
    span = float(np.max(ext[1, -2:] - ext[0, -2:]))
    side = region.height * float(tr.get("scale", (1.0,))[-1])
    cam.zoom = cam.zoom * 0.4 * max(span, side) / max(side, 1e-9)
    cam.center = (*tuple(cam.center)[:-2], *(float(v) for v in c[-2:]))
    if mask is not None:
        viewer.layers.selection.active = mask
        mask.mode = "paint"


__all__ = ["ROLE", "go_to", "show_regions", "show_score_map"]
