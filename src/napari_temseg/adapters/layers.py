"""The one adapter between napari layers and canonical arrays.

* image layer(s) -> a lazy ``(Z, C, Y, X)`` :class:`~napari_temseg.core.data.volume.Volume`:
  one layer (optionally with a channel axis), several same-shape layers used as
  channels, or an RGB layer (averaged to one gray channel, like the core does);
* the spatial ``(Z, Y, X)`` shape, scale and translate that masks and outputs inherit;
* plugin-owned layers (tagged in ``layer.metadata["napari_temseg"]``) that are
  created once and replaced on re-runs; a user's layer is never overwritten.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.data.volume import Volume, as_volume
from ..core.errors import InputError

TAG = "napari_temseg"
CLASSES_KEY = "temseg_classes"  # layer metadata: the class table {"names": [...], "colors": [...]}


# --- reading layers ---------------------------------------------------------------------------
def layer_kind(layer: Any) -> str:
    """ "image", "labels", ... of a layer (also through napari's PublicOnlyProxy;
    no private API).
    """
    nl = sys.modules.get("napari.layers")
    if nl is not None:
        for kind, cls in (("image", nl.Image), ("labels", nl.Labels)):
            if isinstance(layer, cls):
                return kind
    return layer.__class__.__name__.lower()


def is_layer(x: Any) -> bool:
    nl = sys.modules.get("napari.layers")
    return nl is not None and isinstance(x, nl.Layer)


def layer_data(layer: Any) -> Any:
    """The full-resolution array of a layer (level 0 of a multiscale layer)."""
    data = layer.data
    return data[0] if getattr(layer, "multiscale", False) else data


class _Channels:
    """Several same-shape ``(Z, Y, X)`` / ``(Y, X)`` arrays read lazily as one
    ``(Z, C, Y, X)`` array.
    """

    def __init__(self, arrays: Sequence[Any]):
        self.arrays = list(arrays)
        first = tuple(self.arrays[0].shape)
        self.ndim2 = len(first) == 2
        z = 1 if self.ndim2 else first[0]
        self.shape = (z, len(self.arrays), *first[-2:])
        self.dtype = np.result_type(*[np.dtype(a.dtype) for a in self.arrays])

    def __getitem__(self, idx: Any) -> np.ndarray:
        iz, ic, iy, ix = idx
        chans = range(len(self.arrays))[ic]
        picked = [chans] if isinstance(chans, int) else list(chans)
        reads = []
        for c in picked:
            a = self.arrays[c]
            sub = a[iy, ix] if self.ndim2 else a[iz, iy, ix]
            if self.ndim2 and not isinstance(iz, int):  # keep a Z axis of length 1
                sub = np.asarray(sub)[None][iz]
            reads.append(np.asarray(sub, dtype=self.dtype))
        if isinstance(chans, int):
            return reads[0]
        axis = 0 if isinstance(iz, int) else 1
        return np.stack(reads, axis=axis)


def image_volume(layers: Any, channel_axis: int | None = None) -> Volume:
    """Canonical ``(Z, C, Y, X)`` view of one image layer or several layers used as channels."""
    layers = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    if not layers:
        raise InputError(
            "no image layer chosen: open an image (File > Open) or load a sample "
            "(File > Open Sample > napari-temseg) and pick it in the dock"
        )
    if len(layers) == 1:
        layer = layers[0]
        data = layer_data(layer)
        if getattr(layer, "rgb", False):
            axes = "YXC" if data.ndim == 3 else "ZYXC"
            return Volume(data, axes, rgb_to_gray=True)
        if channel_axis is None and data.ndim == 3 and data.shape[-1] in (3, 4):
            return Volume(data, "ZYX")  # a 3D stack in napari; RGB pictures come as rgb layers
        return as_volume(data, channel_axis=channel_axis)
    if channel_axis is not None:
        raise InputError(
            "a channel axis applies to one image layer; with several layers each layer "
            "is one channel: set the channel axis to 'auto'"
        )
    shapes = {tuple(layer_data(la).shape) for la in layers}
    if len(shapes) != 1 or any(getattr(la, "rgb", False) for la in layers):
        names = ", ".join(f"'{la.name}' {tuple(layer_data(la).shape)}" for la in layers)
        raise InputError(
            f"layers used as channels must be gray and have the same shape; got {names}"
        )
    if len(next(iter(shapes))) not in (2, 3):
        raise InputError("layers used as channels must each be 2D (Y, X) or 3D (Z, Y, X)")
    return Volume(_Channels([layer_data(la) for la in layers]), "ZCYX")


def spatial_axes(layer: Any, channel_axis: int | None = None) -> list[int]:
    """Indices of the layer's spatial (Z, Y, X) / (Y, X) dimensions (the channel axis dropped)."""
    nd = layer.ndim
    if channel_axis is None:
        vol_axes = image_volume(layer).axes if nd == 4 else ""
        if "C" in vol_axes:
            channel_axis = vol_axes.index("C")
    drop = None if channel_axis is None else channel_axis % nd
    return [i for i in range(nd) if i != drop]


def spatial_shape(vol: Volume, two_d: bool) -> tuple[int, ...]:
    """Shape of a mask / output for ``vol``: (Y, X) for single 2D images, else (Z, Y, X)."""
    z, _, y, x = vol.shape
    return (y, x) if two_d else (z, y, x)


def is_2d(layers: Any, channel_axis: int | None = None) -> bool:
    layer = layers[0] if isinstance(layers, (list, tuple)) else layers
    return len(spatial_axes(layer, channel_axis)) == 2


def transform(layer: Any, channel_axis: int | None = None) -> dict:
    """scale / translate of ``layer`` restricted to its spatial axes (for masks and outputs)."""
    axes = spatial_axes(layer, channel_axis)
    scale = np.asarray(layer.scale)[axes]
    translate = np.asarray(layer.translate)[axes]
    out = {"scale": tuple(float(s) for s in scale), "translate": tuple(float(t) for t in translate)}
    units = getattr(layer, "units", None)
    if units is not None and len(units) == layer.ndim:
        out["units"] = tuple(str(units[i]) for i in axes)
    return out


def mask_array(layer: Any, vol: Volume, two_d: bool) -> Any:
    """The data of a mask layer, checked against the image's spatial shape."""
    if layer is None:
        raise InputError(
            "no mask layer chosen: click 'New mask' in the Annotate dock and paint on it"
        )
    data = layer_data(layer)
    want = spatial_shape(vol, two_d)
    if tuple(data.shape) != want and not (
        two_d is False and tuple(data.shape) == want[1:] and want[0] == 1
    ):
        raise InputError(
            f"mask layer '{layer.name}' has shape {tuple(data.shape)} but the image needs {want}: "
            "make the mask from this image (Annotate dock: 'New mask')"
        )
    return data


def current_z(layer: Any, viewer: Any, channel_axis: int | None = None) -> int:
    """Index of the slice of ``layer`` the viewer shows now (0 for 2D images)."""
    axes = spatial_axes(layer, channel_axis)
    if len(axes) == 2:
        return 0
    zax = axes[0]
    point = np.asarray(viewer.dims.point, dtype=float)[-layer.ndim :]
    z = (point[zax] - float(layer.translate[zax])) / float(layer.scale[zax])
    n = layer_data(layer).shape[zax]
    return int(np.clip(np.round(z), 0, n - 1))


# --- plugin-owned layers ----------------------------------------------------------------------
def is_ours(layer: Any) -> bool:
    return isinstance(getattr(layer, "metadata", None), dict) and TAG in layer.metadata


def find_ours(viewer: Any, role: str, source: str) -> Any | None:
    """The layer this plugin made for (role, source image name), if it is still in the viewer."""
    for layer in viewer.layers:
        meta = layer.metadata.get(TAG) if is_ours(layer) else None
        if isinstance(meta, dict) and meta.get("role") == role and meta.get("source") == source:
            return layer
    return None


def free_name(viewer: Any, name: str) -> str:
    """``name`` if no layer uses it, else ``name (2)``, ``name (3)``, ..."""
    taken = {la.name for la in viewer.layers}
    if name not in taken:
        return name
    i = 2
    while f"{name} ({i})" in taken:
        i += 1
    return f"{name} ({i})"


def put_layer(
    viewer: Any, kind: str, data: Any, *, role: str, source: str, name: str, **kwargs
) -> Any:
    """Add a plugin-owned ``kind`` ("image" / "labels") layer or replace the data of ours.

    A layer of the same name that the user made is left alone: the new layer gets a free name.
    """
    layer = find_ours(viewer, role, source)
    if layer is not None and layer_kind(layer) != kind:
        viewer.layers.remove(layer)
        layer = None
    if layer is not None:
        layer.data = data
        for key in ("scale", "translate", "units"):
            if key in kwargs:
                setattr(layer, key, kwargs[key])
        for key in ("contrast_limits", "colormap"):
            if key in kwargs:
                setattr(layer, key, kwargs[key])
        return layer
    meta = {TAG: {"role": role, "source": source}}
    add = viewer.add_image if kind == "image" else viewer.add_labels
    layer = add(data, name=free_name(viewer, name), metadata=meta, **kwargs)
    if role in EDITABLE_ROLES:
        release_on_user_edit(layer)
    return layer


EDITABLE_ROLES = ("prediction",)  # outputs a user may correct by hand


def release_on_user_edit(layer: Any) -> None:
    """Once the user paints into ``layer`` or renames it, it is theirs: this plugin no longer
    replaces or re-thresholds it (a new output layer is made instead)."""

    def release(*_: Any) -> None:
        meta = layer.metadata.get(TAG)
        if isinstance(meta, dict) and meta.get("role") in EDITABLE_ROLES:
            meta["role"] = f"edited {meta['role']}"

    layer.events.paint.connect(release)
    layer.events.name.connect(release)


def is_released(layer: Any) -> bool:
    """Whether the user has taken over a plugin output layer (see release_on_user_edit)."""
    meta = layer.metadata.get(TAG) if is_ours(layer) else None
    return not isinstance(meta, dict) or str(meta.get("role", "")).startswith("edited ")


def make_mask(viewer: Any, image: Any, channel_axis: int | None = None) -> Any:
    """``<image> mask``: a uint8 Labels layer of the image's spatial shape and transform.

    A mask this plugin made earlier for the same image is returned as it is (it holds
    the user's painting); a user's layer with that name is left alone.
    """
    layer = find_ours(viewer, "mask", image.name)
    if layer is None:
        vol = image_volume(image, channel_axis)
        data = np.zeros(spatial_shape(vol, is_2d(image, channel_axis)), dtype=np.uint8)
        layer = put_layer(
            viewer,
            "labels",
            data,
            role="mask",
            source=image.name,
            name=f"{image.name} mask",
            **transform(image, channel_axis),
        )
    return layer


_GUARDED: weakref.WeakSet = weakref.WeakSet()  # viewers whose layer removal is guarded


def guard_layer_removal(viewer: Any) -> None:
    """Before napari removes a layer: make the canvas' OpenGL context current, and take a
    Labels layer out of its paint / fill / erase mode.

    Removing a Labels layer while its brush overlay is on crashed napari (segfault in
    Mesa's software OpenGL, the first canvas redraw after the removal) while training ran:
    5 of 6 runs; 0 of 5 with the layer switched to pan_zoom first (docs/architecture.md,
    "Reliability rules"). A rarer crash (same place) remained under CPU load. Its suspected
    cause: napari 0.9 deletes the layer's GL objects and calls glFinish during the removal
    (``_clean_and_update_scenegraph``), outside paintGL, without making its canvas current,
    so these GL calls ran in Qt's window-compositing context (checked) instead of the
    canvas'. Installed once per viewer by the docks.
    """
    real = getattr(viewer, "__wrapped__", viewer)
    try:
        if real in _GUARDED:
            return
        _GUARDED.add(real)
    except TypeError:  # not weak-referenceable: connect anyway (a second hook is harmless)
        pass

    def to_pan_zoom(event: Any) -> None:
        make_canvas_current(real)
        try:
            layer = viewer.layers[event.index]
        except (IndexError, AttributeError, TypeError):
            return
        if layer_kind(layer) == "labels" and getattr(layer, "mode", "pan_zoom") != "pan_zoom":
            layer.mode = "pan_zoom"

    viewer.layers.events.removing.connect(to_pan_zoom)


def make_canvas_current(viewer: Any) -> None:
    """Make the viewer canvas' OpenGL context current (what paintGL does), so GL work napari
    does outside a paint (layer removal) reaches the canvas' context. No Qt canvas: nothing."""
    try:
        canvas = viewer.window._qt_viewer.canvas._scene_canvas
        canvas.set_current()
    except (AttributeError, RuntimeError):  # headless, another napari, or being closed
        pass


def layers_of(viewer: Any, kind: str) -> list:
    """Layers of ``kind`` ("image" / "labels") in the viewer, in layer-list order."""
    return [la for la in viewer.layers if layer_kind(la) == kind]


def classes_of(layer: Any) -> Any:
    """The class table (``core.config.classes.ClassTable``) recorded on a layer, or None."""
    from ..core.config.classes import ClassTable

    meta = getattr(layer, "metadata", None) if is_layer(layer) else None
    table = meta.get(CLASSES_KEY) if isinstance(meta, dict) else None
    return ClassTable.from_dict(table) if table else None
