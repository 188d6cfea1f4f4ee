"""The class table of a segmentation: names, label values and colours of K classes.

Class ``0`` is the background class; a model with K = 2 classes is the binary model it has
always been (one output channel, sigmoid), K >= 3 gives K output channels and a softmax.

Label values in masks (the same rule for K = 2 as the binary conventions of earlier
versions):

* dense masks: ``0`` = background, ``1 .. K-1`` = the other classes (every pixel labelled);
* sparse scribbles: ``0`` = unlabelled (not learnt), ``1 .. K-1`` = the other classes and
  ``K`` = background (binary: 1 foreground, 2 background).

Predicted labels use the dense values (class ids), so a corrected prediction is a dense mask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .choices import ConfigError

MAX_CLASSES = 64
# the napari label colours of 1, 2, ... (background transparent-looking dark grey)
PALETTE = (
    "#505050",
    "#ff4040",
    "#40a0ff",
    "#ffd020",
    "#40d060",
    "#c060ff",
    "#ff9030",
    "#30e0e0",
    "#ff60c0",
    "#a0a0ff",
    "#a0ff60",
    "#c08040",
)
UNSURE_COLOR = "#ffffff"  # labels of pixels below the minimum confidence (value K)
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def default_names(k: int) -> tuple[str, ...]:
    if k == 2:
        return ("background", "foreground")
    return ("background", *(f"class {i}" for i in range(1, k)))


def default_colors(k: int) -> tuple[str, ...]:
    return tuple(PALETTE[i % len(PALETTE)] for i in range(k))


@dataclass(frozen=True)
class ClassTable:
    """K classes (K >= 2): ``names[i]`` and ``colors[i]`` ('#rrggbb') of class ``i``."""

    names: tuple[str, ...] = ("background", "foreground")
    colors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = tuple(str(n).strip() for n in self.names)
        k = len(names)
        if not 2 <= k <= MAX_CLASSES:
            raise ConfigError(f"a segmentation needs 2..{MAX_CLASSES} classes, got {k}")
        if any(not n or "," in n for n in names):
            raise ConfigError(f"class names must be non-empty and without commas: {names}")
        if len(set(names)) != k:
            raise ConfigError(f"class names must differ from each other: {names}")
        colors = tuple(self.colors) or default_colors(k)
        if len(colors) != k or not all(isinstance(c, str) and _HEX.match(c) for c in colors):
            raise ConfigError(f"give one '#rrggbb' colour per class ({k}), got {colors}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "colors", tuple(c.lower() for c in colors))

    @classmethod
    def default(cls, k: int) -> ClassTable:
        return cls(default_names(k))

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def binary(self) -> bool:
        return self.k == 2

    @property
    def out_channels(self) -> int:
        """Network output channels: 1 (sigmoid) for binary, K (softmax) otherwise."""
        return 1 if self.binary else self.k

    def value(self, c: int, sparse: bool) -> int:
        """The label value that paints class ``c``."""
        return self.k if sparse and c == 0 else c

    def class_of(self, value: int, sparse: bool) -> int | None:
        """The class a label value means (None: unlabelled)."""
        if sparse:
            return None if value == 0 else (0 if value == self.k else value)
        return value

    def describe(self, sparse: bool) -> str:
        """'1 = pores, 2 = grains, 3 = matrix (background), 0 = unlabelled'."""
        order = list(range(1, self.k)) + [0] if sparse else list(range(self.k))
        parts = [f"{self.value(c, sparse)} = {self.names[c]}" for c in order]
        if sparse:
            parts[-1] += " (background)"
            parts.append("0 = unlabelled")
        return ", ".join(parts)

    def color_dict(self, sparse: bool = False, unsure: bool = False) -> dict[int, str]:
        """{label value: colour} for a napari labels layer of this table."""
        out = {self.value(c, sparse): self.colors[c] for c in range(self.k)}
        if unsure and not sparse:
            out[self.k] = UNSURE_COLOR
        return out

    def to_dict(self) -> dict:
        return {"names": list(self.names), "colors": list(self.colors)}

    @classmethod
    def from_dict(cls, d: Any) -> ClassTable:
        if not isinstance(d, dict) or not isinstance(d.get("names"), list):
            raise ConfigError(f"a class table is {{'names': [...], 'colors': [...]}}, got {d!r}")
        return cls(tuple(d["names"]), tuple(d.get("colors") or ()))


def parse_names(names: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """'matrix,pores,grains' or a list -> a tuple of names (None stays None)."""
    if names is None:
        return None
    items = names.split(",") if isinstance(names, str) else [str(n) for n in names]
    return tuple(n.strip() for n in items)


def infer_k(values: Iterable[int], sparse: bool) -> int:
    """The number of classes the label values of some masks imply (at least 2).

    Dense 0/255 masks are binary (as always); a mask whose largest value would mean more
    than MAX_CLASSES classes is refused (it is an image or an instance map, not classes)."""
    vals = {int(v) for v in values}
    if not sparse and vals <= {0, 255}:
        return 2
    top = max(vals, default=0)
    k = max(2, top if sparse else top + 1)
    if k > MAX_CLASSES:
        raise InputError(
            f"the mask holds label {top}, which would mean {k} classes (at most {MAX_CLASSES}): "
            "masks number classes 0, 1, 2, ...; an instance map (one id per object) must be "
            "turned into classes first"
        )
    return k


def check_values(values: Iterable[int], k: int, sparse: bool, where: str, table=None) -> None:
    """Raise InputError when a mask holds label values outside the K-class label set."""
    top = k if sparse else k - 1
    bad = sorted(v for v in (int(x) for x in values) if not 0 <= v <= top)
    if not bad:
        return
    table = table or ClassTable.default(k)
    if k == 2:
        hint = (
            "sparse scribbles use 1 = foreground, 2 = background, 0 = unlabelled"
            if sparse
            else "dense masks use 0 = background, 1 = foreground; for scribbles with label 2 "
            "as background turn on sparse mode (--sparse), for more classes set --classes"
        )
    else:
        hint = (
            f"the {k} classes are {table.describe(sparse)}; add a class (Annotate dock) or "
            "set the number of classes (--classes)"
        )
    raise InputError(f"{where} has labels {bad[:5]} outside the label set: {hint}")


def targets(mask: np.ndarray, k: int, sparse: bool) -> tuple[np.ndarray, np.ndarray]:
    """(class id, loss weight) float32 from a checked mask slice (weight 0 = unlabelled)."""
    if sparse:
        tgt = np.where(mask == k, 0, mask).astype(np.float32)
        return tgt, (mask > 0).astype(np.float32)
    return mask.astype(np.float32), np.ones(mask.shape, np.float32)


def resolve(
    table: ClassTable | None, k: int | None, names: str | Sequence[str] | None
) -> ClassTable | None:
    """One class table from what the user gave (None: infer K from the masks)."""
    parsed = parse_names(names)
    if table is not None:
        if k is not None and k != table.k:
            raise ConfigError(f"classes={k} but the class table has {table.k} classes")
        if parsed is not None and parsed != table.names:
            raise ConfigError("give class names or a class table, not both")
        return table
    if parsed is not None:
        if k is not None and k != len(parsed):
            raise ConfigError(
                f"classes={k} but {len(parsed)} class names were given: {', '.join(parsed)}"
            )
        return ClassTable(parsed)
    return None if k is None else ClassTable.default(k)


__all__ = [
    "ClassTable",
    "MAX_CLASSES",
    "PALETTE",
    "check_values",
    "default_colors",
    "default_names",
    "infer_k",
    "parse_names",
    "resolve",
    "targets",
]
