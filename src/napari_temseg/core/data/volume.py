"""Canonical image access: lazy (Z, C, Y, X) volumes, masks, normalisation, 2.5D context.

Nothing here loads a whole stack: :class:`Volume` wraps numpy, dask, zarr,
memory-mapped TIFF (anything with ``shape``, ``dtype`` and ``__getitem__``) and
reads only the slices / regions asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config.model import InputSpec
from ..errors import InputError


class Volume:
    """Read-only ``(Z, C, Y, X)`` view of an array-like with known axis order."""

    def __init__(self, array: Any, axes: str, rgb_to_gray: bool = False):
        axes = axes.upper()
        if sorted(axes) != sorted(set(axes)) or not set(axes) <= set("ZCYX") or "Y" not in axes:
            raise InputError(
                f"axes '{axes}' must use each of Z, C, Y, X at most once (Y, X required)"
            )
        if len(axes) != len(array.shape):
            raise InputError(f"image has {len(array.shape)} dimensions but axes are '{axes}'")
        self.array, self.axes, self.rgb_to_gray = array, axes, rgb_to_gray
        size = dict(zip(axes, array.shape, strict=False))
        c = 1 if rgb_to_gray else size.get("C", 1)
        self.shape = (size.get("Z", 1), c, size["Y"], size["X"])
        self.dtype = np.dtype(array.dtype)
        self._ranges: dict[int, tuple] = {}  # per-slice intensity ranges (intensity_norm "image")

    def __len__(self) -> int:
        return self.shape[0]

    def region(self, z: int, ys: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
        """Pixels of slice ``z`` as a ``(C, h, w)`` numpy array in the source dtype."""
        index, kept = [], []
        for ax in self.axes:
            if ax == "Z":
                index.append(int(z))
            else:
                index.append({"Y": ys, "X": xs, "C": slice(None)}[ax])
                kept.append(ax)
        out = np.asarray(self.array[tuple(index)])
        if "C" not in kept:
            out = out[None]
            kept = ["C"] + kept
        out = np.transpose(out, [kept.index(a) for a in "CYX"])
        if self.rgb_to_gray:
            out = out[:3].astype(np.float32).mean(axis=0, keepdims=True)
        return out

    def slice(self, z: int) -> np.ndarray:
        return self.region(z)


def guess_axes(
    shape: Sequence[int], channel_axis: int | None = None, dtype: Any = None
) -> tuple[str, bool]:
    """Axis order for an array of ``shape``; returns (axes, rgb_to_gray).

    Rules (documented in docs/usage.md): 2D is (Y, X); 3D is (Z, Y, X) unless the
    last axis has 3 or 4 entries and the dtype is uint8 (an RGB(A) picture of a
    grayscale micrograph: converted to one channel); 4D needs a channel axis,
    guessed as axis 1 or the last axis when it has <= 8 entries.
    """
    nd = len(shape)
    if channel_axis is not None:
        if nd not in (3, 4):
            raise InputError(
                f"channel_axis given for a {nd}D image; only 3D (C,Y,X) or 4D stacks have channels"
            )
        ca = _axis_index(channel_axis, shape)
        rest = "YX" if nd == 3 else "ZYX"
        axes = list(rest)
        axes.insert(ca, "C")
        return "".join(axes), False
    if nd == 2:
        return "YX", False
    if nd == 3:
        if shape[-1] in (3, 4) and np.dtype(dtype) == np.uint8:
            return "YXC", True
        return "ZYX", False
    if nd == 4:
        if shape[1] <= 8:
            return "ZCYX", False
        if shape[-1] <= 8:
            return "ZYXC", False
        raise InputError(
            f"cannot tell the channel axis of a {tuple(shape)} stack: pass channel_axis"
        )
    raise InputError(f"images must be 2D, 3D or 4D; got shape {tuple(shape)}")


def _axis_index(axis: Any, shape: Sequence[int]) -> int:
    """``axis`` as 0..nd-1; negative axes count from the end (-1 = last), as in numpy."""
    nd = len(shape)
    ok = isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_))
    if not ok or not -nd <= int(axis) < nd:
        raise InputError(
            f"channel_axis {axis!r} does not exist in an image of shape {tuple(shape)}: "
            f"use 0..{nd - 1} (or -{nd}..-1, counted from the end)"
        )
    return int(axis) % nd


def as_volume(image: Any, channel_axis: int | None = None, axes: str | None = None) -> Volume:
    """Wrap any array-like as a lazy ``(Z, C, Y, X)`` :class:`Volume`."""
    if isinstance(image, Volume):
        return image
    if not hasattr(image, "shape") or not hasattr(image, "__getitem__"):
        image = np.asarray(image)
    dtype = np.dtype(image.dtype)
    if dtype.kind not in "biuf":
        raise InputError(f"image dtype {dtype} is not numeric; convert it to integers or floats")
    if axes is not None:
        return Volume(image, axes)
    ax, rgb = guess_axes(image.shape, channel_axis, dtype)
    return Volume(image, ax, rgb_to_gray=rgb)


def as_mask(mask: Any, vol: Volume) -> Volume:
    """Validate a ``(Z, Y, X)`` (or ``(Y, X)`` for Z=1) mask against ``vol``."""
    if not hasattr(mask, "shape"):
        mask = np.asarray(mask)
    shape = tuple(mask.shape)
    want = (vol.shape[0],) + vol.shape[2:]
    if shape == want[1:] and want[0] == 1:
        m = Volume(mask, "YX")
    elif shape == want:
        m = Volume(mask, "ZYX")
    else:
        raise InputError(
            f"mask shape {shape} does not match the image (Z, Y, X) = {want}: paint the mask on "
            "a Labels layer made from this image (Annotate dock: 'New mask')"
        )
    if np.dtype(mask.dtype).kind not in "biu":
        if np.dtype(mask.dtype).kind == "f":
            m = Volume(_FloatMask(mask), m.axes)
        else:
            raise InputError(f"mask dtype {mask.dtype} is not integer; save masks as uint8")
    return m


class _FloatMask:
    """Float masks (0.0 / 1.0) read as integers; fractional values are rejected on read."""

    def __init__(self, a: Any):
        self.a, self.shape, self.dtype = a, a.shape, np.dtype(np.uint8)

    def __getitem__(self, idx: Any) -> np.ndarray:
        v = np.asarray(self.a[idx])
        if not np.all(np.isfinite(v)) or np.any(v != np.round(v)):
            raise InputError(
                "mask has fractional or NaN values; masks must be whole numbers (0, 1, 2)"
            )
        return v.astype(np.uint8)


def read_mask(
    mask: Volume,
    z: int,
    sparse: bool,
    ys: slice = slice(None),
    xs: slice = slice(None),
    k: int = 2,
) -> np.ndarray:
    """Mask pixels of slice ``z`` as uint8 (h, w), checked against the K-class label set
    (``core/config/classes.py``).

    Dense: 0 background, 1..K-1 the other classes (binary 0/255 masks are read as 0/1).
    Sparse: 0 unlabelled, 1..K-1 the other classes, K background (binary: 1 fg, 2 bg).
    """
    from ..config.classes import check_values

    m = mask.region(z, ys, xs)[0]
    vals = np.unique(m)
    if not sparse and k == 2 and set(vals.tolist()) <= {0, 255}:
        return (m > 0).astype(np.uint8)
    check_values(vals.tolist(), k, sparse, f"mask slice {z}")
    return m.astype(np.uint8, copy=False)


def mask_values(mask: Volume, slices: Sequence[int]) -> set[int]:
    """The label values present in the given slices of a mask (read one slice at a time)."""
    out: set[int] = set()
    for z in slices:
        out.update(np.unique(np.asarray(mask.region(z)[0])).tolist())
    return out


def annotated_slices(mask: Volume, explicit: Sequence[int] | None = None) -> list[int]:
    """Slices with at least one painted pixel, or the explicitly listed ones."""
    n = mask.shape[0]
    if explicit is not None:
        bad = [z for z in explicit if not 0 <= z < n]
        if bad:
            raise InputError(f"annotated slices {bad} are outside the stack (0..{n - 1})")
        return sorted(set(int(z) for z in explicit))
    return [z for z in range(n) if np.any(np.asarray(mask.region(z)))]


def context_indices(z: int, depth: int, k: int) -> list[int]:
    """Slices z-k..z+k, reflected at the stack edges (no edge repeat)."""
    out = []
    for dz in range(-k, k + 1):
        i = z + dz
        if depth == 1:
            i = 0
        else:
            period = 2 * (depth - 1)
            i = abs(i) % period
            i = period - i if i >= depth else i
        out.append(i)
    return out


def compute_norm(
    volumes: Sequence[Volume],
    slices: Sequence[Sequence[int]] | None = None,
    pct: tuple[float, float] = (0.5, 99.5),
    max_pixels: int = 2_000_000,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel robust (percentile) range from (a subsample of) the given slices."""
    c = volumes[0].shape[1]
    if any(v.shape[1] != c for v in volumes):
        raise InputError("all training images must have the same number of channels")
    samples: list[list[np.ndarray]] = [[] for _ in range(c)]
    for i, vol in enumerate(volumes):
        zs = list(slices[i]) if slices is not None else list(range(vol.shape[0]))
        zs = zs[:: max(1, len(zs) // 8)][:8] or [0]
        step = max(
            1, int(np.sqrt(vol.shape[2] * vol.shape[3] * len(zs) * len(volumes) / max_pixels))
        )
        for z in zs:
            reg = vol.region(z, slice(None, None, step), slice(None, None, step))
            for ch in range(c):
                v = reg[ch].astype(np.float32).ravel()
                samples[ch].append(v[np.isfinite(v)])
    lo, hi = [], []
    for ch in range(c):
        v = np.concatenate(samples[ch])
        if v.size == 0:
            raise InputError(f"channel {ch} has no finite pixels (all NaN/inf): check the image")
        a, b = np.percentile(v, pct)
        if not b > a:
            a, b = float(v.min()), float(v.max())
        if not b > a:
            b = a + 1.0
        lo.append(float(a))
        hi.append(float(b))
    return tuple(lo), tuple(hi)


def normalize(raw: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(spec.network_channels, h, w) raw -> float32 with the spec's (dataset) range."""
    c = spec.channels
    lo = np.asarray(spec.norm_lo, np.float32)[np.arange(raw.shape[0]) % c]
    hi = np.asarray(spec.norm_hi, np.float32)[np.arange(raw.shape[0]) % c]
    return _scale(raw, lo, hi)


def _scale(raw: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per-row (x - lo) / (hi - lo) as float32; NaN/inf become 0."""
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    out = (raw.astype(np.float32) - lo[:, None, None]) / (hi - lo)[:, None, None]
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0, copy=False)


def slice_range(vol: Volume, z: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Robust per-channel (lo, hi) of slice ``z`` alone (subsampled), cached on the volume."""
    if z not in vol._ranges:
        vol._ranges[z] = compute_norm([vol], [[z]])
    return vol._ranges[z]


CHANNELS_FIX = "choose the image (or channel axis) the model was trained on"


def check_channels(
    expected: int, have: int, what: str = "the image", fix: str = CHANNELS_FIX
) -> None:
    """The one model-vs-image channel check (the predictor, the CLI, the docks, the console):
    ``expected`` channels (the model's), ``have`` (``what``'s); ``fix`` names how the caller's
    user chooses the right image."""
    if int(have) != int(expected):
        raise InputError(f"the model expects {expected} channel(s) but {what} has {have}: {fix}")


def network_input(
    vol: Volume, z: int, spec: InputSpec, ys: slice = slice(None), xs: slice = slice(None)
) -> np.ndarray:
    """Normalised 2.5D input for slice ``z``: ``(C * (2k+1), h, w)`` float32."""
    check_channels(spec.channels, vol.shape[1])
    zs = context_indices(z, vol.shape[0], spec.context)
    raw = np.concatenate([vol.region(i, ys, xs) for i in zs], axis=0)
    if spec.intensity_norm == "image":  # each slice by its own range, whatever part is read
        ranges = [slice_range(vol, i) for i in zs]
        return _scale(
            raw, np.concatenate([r[0] for r in ranges]), np.concatenate([r[1] for r in ranges])
        )
    return normalize(raw, spec)
