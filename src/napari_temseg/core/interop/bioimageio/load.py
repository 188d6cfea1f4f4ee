"""Running a local bioimage.io model package (a ``.zip``, or a folder with ``rdf.yaml`` /
``bioimageio.yaml``) through the tiled, streamed predictor (core/inference/predict.py), offline.

:func:`load_package` reads the description with bioimageio.spec without any download (the
weights' sha256 is checked when they are read) and returns a :class:`PackageModel`, a
TrainedModel whose network (``PackageNet``) wraps the package's weights:

* input: one tensor, axes batch, (channel), y, x in any order - a 2D image of one or more
  channels; z, time and index axes are refused. y / x sizes ``min + n * step`` or fixed
  (tiles up to that size). napari-temseg's own 2.5D packages (channels z_minus1_ch0, ...)
  keep their context.
* weights: TorchScript (``torch.jit.load``), else ONNX (onnxruntime, CPU). Packages with only
  pytorch_state_dict weights need their Python architecture code and are refused.
* processing: ensure_dtype, scale_linear, clip, binarize, zero_mean_unit_variance,
  fixed_zero_mean_unit_variance, scale_range, sigmoid, softmax (input and output; an
  ensure_dtype of the output is ignored: outputs stay float32); others are refused.
* output: the first output tensor, axes batch, (channel), y, x at the input's size. One
  channel is a binary model's foreground probability, two channels the background and
  foreground probabilities, K >= 3 channels the probabilities of K classes named after the
  channels (multi-channel outputs are read as class probabilities that sum to 1).

The predictor feeds raw intensities (InputSpec "dataset" with the range 0..1 is the
identity, data.network_input). PackageNet pads each tile (reflect) to a size the package
takes, applies the package's preprocessing, runs the weights, crops the output and applies
the postprocessing. The predictor expects LOGITS (sigmoid for one output channel, softmax
for K), while packages usually output probabilities (sigmoid / softmax baked in): those are
converted with ``logit(p)`` (one channel), ``log(p1) - log(p0)`` (two) or ``log(p)`` (K),
p clamped to [1e-6, 1 - 1e-6], so the predictor's sigmoid / softmax gives the package's
values back. A trailing sigmoid / softmax postprocessing step is skipped instead.

Statistics of per-sample and dataset preprocessing (zero_mean_unit_variance, scale_range,
clip percentiles) are computed per tile - the predictor's tile is the "sample" - so the
result depends a little on the tile size (larger tiles are closer to per-image statistics).
The exception is the usual ``scale_range`` 0.5 / 99.5 % per channel as the first step: it
becomes napari-temseg's per-slice range (InputSpec "image"), the whole slice as the sample.
Tiles are multiples of 32 px (the ``multiple`` of the "bioimage.io" entry of
nets/registry.py); PackageNet pads them to the package's next valid size.

A PackageModel only predicts: saving it (.safetensors), exporting it or training it further
raises an error naming the fix (use the package itself).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config.classes import ClassTable
from ...config.model import InputSpec, ModelConfig
from ...errors import InputError, ModelFileError
from ...modelfile.format import TrainedModel
from ...nets.registry import IMPORTED_ARCH
from .net import (
    CANON,
    ONLY_PREDICTS,
    OnnxRunner,
    Plan,
    first_line,
    package_net,
    step_function,
)

ARCH = IMPORTED_ARCH  # ModelConfig.arch of an imported package
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
WEIGHTS = ("torchscript", "onnx")  # the formats this predictor runs, in order of preference


def is_package(path: Any) -> bool:
    """A ``.zip``, a folder holding rdf.yaml / bioimageio.yaml, or such a yaml file."""
    p = Path(path)
    if p.is_dir():
        return any((p / n).is_file() for n in RDF_NAMES)
    return p.suffix.lower() == ".zip" or p.name in RDF_NAMES or p.name.endswith(".bioimageio.yaml")


def load_any_model(path: Any, device: str = "cpu") -> TrainedModel:
    """A napari-temseg model file (.safetensors) or a bioimage.io package (.zip / folder)."""
    if is_package(path):
        return load_package(path, device)
    from ...modelfile.format import load_model

    return load_model(path, device)


def _read(path: Path) -> Any:
    """The model description (spec 0.5), read offline; ModelFileError naming the fix."""
    try:
        from bioimageio.spec import load_description
    except ImportError:
        raise InputError(
            "running a bioimage.io package needs bioimageio.spec: pip install bioimageio.core"
        ) from None
    if not path.exists():
        raise ModelFileError(f"bioimage.io package '{path}' not found")
    try:
        descr = load_description(path, format_version="latest", perform_io_checks=False)
    except Exception as e:  # yaml, zip or pydantic errors of a damaged / foreign file
        raise ModelFileError(
            f"'{path.name}' is not a readable bioimage.io package ({first_line(e)}): "
            "give its .zip or the folder holding its rdf.yaml"
        ) from None
    errors = descr.validation_summary.errors
    if errors:
        loc = ".".join(str(p) for p in errors[0].loc)
        msg = errors[0].msg.removeprefix("Value error, ").splitlines()[0][:150]
        raise ModelFileError(
            f"'{path.name}' is not a valid bioimage.io model ({loc + ': ' if loc else ''}{msg}); "
            "download the package again or fix its rdf.yaml"
        )
    if getattr(descr, "type", None) != "model":
        raise InputError(f"'{path.name}' is a bioimage.io {descr.type}, not a model")
    return descr


def _axis_refusal(axis: Any, name: str, role: str) -> InputError:
    kind, aid = axis.type, str(axis.id)
    if kind == "space":
        what = "a z axis: it is a 3D model" if aid == "z" else f"a space axis '{aid}'"
    else:
        what = f"a {kind} axis"
    return InputError(
        f"'{name}': its {role} has {what}; napari-temseg runs 2D models (axes batch, channel, "
        "y, x): choose a 2D package or run this one with bioimageio.core"
    )


def _layout(tensor: Any, name: str, role: str) -> tuple[str, dict]:
    """(axis order as letters of CANON, {the package's axis id: CANON index})."""
    order, dims = "", {}
    for a in tensor.axes:
        kind, aid = a.type, str(a.id)
        letter = {"batch": "b", "channel": "c"}.get(kind) or (aid if kind == "space" else "")
        if not letter or letter not in CANON or letter in order:
            raise _axis_refusal(a, name, role)
        order += letter
        dims[aid] = CANON.index(letter)
    if "y" not in order or "x" not in order:
        raise InputError(f"'{name}': its {role} has no y and x axes; choose a 2D image model")
    return order, dims


def _sizes(tensor: Any, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """((min, step) of y, of x); step 0: a fixed size."""
    out = []
    for aid in "yx":
        size = next(a.size for a in tensor.axes if str(a.id) == aid)
        if isinstance(size, int):
            out.append((size, 0))
        elif hasattr(size, "step"):
            out.append((int(size.min), int(size.step)))
        else:
            raise InputError(
                f"'{name}': the input's {aid} size refers to another axis; napari-temseg runs "
                "packages whose y / x sizes are fixed or min + n x step"
            )
    return out[0], out[1]


def _channels(tensor: Any) -> list[str]:
    axis = next((a for a in tensor.axes if a.type == "channel"), None)
    return [str(n) for n in axis.channel_names] if axis is not None else [str(tensor.id)]


def _context(names: list[str]) -> tuple[int, int]:
    """(image channels, 2.5D context): napari-temseg's own 2.5D packages name their channels
    z_minus<k>_ch<c> .. z_plus<k>_ch<c> (slice-major, :mod:`.package`); others: (n, 0)."""
    m = re.fullmatch(r"z_minus(\d+)_ch0", names[0])
    k = int(m.group(1)) if m else 0
    c = len(names) // (2 * k + 1)
    zs = [f"z_minus{-d}" if d < 0 else f"z_plus{d}" if d else "z" for d in range(-k, k + 1)]
    ok = k and len(names) % (2 * k + 1) == 0 and names == [f"{z}_ch{i}" for z in zs
                                                           for i in range(c)]  # fmt: skip
    return (c, k) if ok else (len(names), 0)


def _class_table(names: list[str]) -> ClassTable:
    """Class names from the output channels: one channel is the foreground of a binary model."""
    clean = [re.sub(r"[,\s]+", " ", n).strip() or f"class {i}" for i, n in enumerate(names)]
    clean = [n if clean.index(n) == i else f"{n} {i}" for i, n in enumerate(clean)]
    if len(clean) == 1:
        clean = ["rest" if clean[0] == "background" else "background", clean[0]]
    return ClassTable(tuple(clean))


def _weights(descr: Any, name: str, prefer: str | None) -> tuple[str, Any]:
    """(format, weights entry): TorchScript, else ONNX; refusals name the fix."""
    w = descr.weights
    present = [k for k in type(w).model_fields if getattr(w, k, None) is not None]
    if prefer is not None and prefer not in WEIGHTS:
        raise InputError(f"weights must be one of {', '.join(WEIGHTS)}, got '{prefer}'")
    usable = [f for f in ((prefer,) if prefer else WEIGHTS) if f in present]
    if usable:
        return usable[0], getattr(w, usable[0])
    if prefer:
        raise InputError(f"'{name}' has no {prefer} weights, only {', '.join(present)}")
    if present == ["pytorch_state_dict"]:
        raise InputError(
            f"'{name}' has only pytorch_state_dict weights, which need the package's Python "
            "architecture code: use a package with torchscript or onnx weights"
        )
    raise InputError(
        f"'{name}' has only {', '.join(present)} weights: napari-temseg runs torchscript or "
        "onnx weights; use a package with those (or bioimageio.core)"
    )


def _bytes(entry: Any, name: str) -> bytes:
    src = str(entry.source)
    if src.startswith(("http://", "https://")):
        raise ModelFileError(
            f"'{name}': its weights are at {src}: download the whole package (.zip) and load that"
        )
    try:
        return entry.get_reader().read()  # checks the sha256 given in the description
    except Exception as e:
        raise ModelFileError(
            f"'{name}': its weights {src} cannot be read ({first_line(e)}); "
            "download the package again"
        ) from None


def _torchscript(data: bytes, name: str) -> Any:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jit is deprecated (see core/interop/formats.py)
            return torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    except Exception as e:
        raise ModelFileError(
            f"'{name}': its TorchScript weights do not load ({first_line(e)}); try weights='onnx' "
            "or a newer torch"
        ) from None


def _pre_steps(inp: Any) -> tuple[list, str]:
    """(the input's preprocessing steps left to PackageNet, InputSpec.intensity_norm): a
    leading scale_range 0.5 / 99.5 % per channel is the predictor's per-slice range."""
    steps = [s for s in inp.preprocessing
             if not (s.id == "ensure_dtype" and s.kwargs.dtype == "float32")]  # fmt: skip
    if steps and steps[0].id == "scale_range":
        kw = steps[0].kwargs
        axes = {str(a) for a in kw.axes or ()} - {"batch"}
        ids = [str(a.id) for a in inp.axes if a.type == "space"]
        same = kw.reference_tensor is None or str(kw.reference_tensor) == str(inp.id)
        if (kw.min_percentile, kw.max_percentile) == (0.5, 99.5) and axes == set(ids) and same:
            return steps[1:], "image"
    return steps, "dataset"


def _post_steps(out: Any, k: int, dims: dict) -> tuple[list, bool]:
    """(the output's postprocessing steps to run, whether the result is logits): a final
    sigmoid (one channel) or softmax over the channels (K) is skipped, its input kept."""
    steps = [s for s in out.postprocessing if s.id != "ensure_dtype"]  # outputs stay float
    last = steps[-1] if steps else None
    if last is not None and (
        (last.id == "sigmoid" and k == 1)
        or (last.id == "softmax" and k >= 2 and dims.get(str(last.kwargs.axis)) == 1)
    ):
        return steps[:-1], True
    return steps, False


def _check_output(out: Any, inp: Any, name: str) -> None:
    """The output's y and x are the input's (same size and scale): tiles are blended."""
    fixed = {str(a.id): a.size for a in inp.axes if isinstance(getattr(a, "size", None), int)}
    scale = {str(a.id): a.scale for a in inp.axes if a.type == "space"}
    for a in (a for a in out.axes if a.type == "space"):
        aid, size = str(a.id), a.size
        same = (
            str(getattr(size, "tensor_id", "")) == str(inp.id)
            and str(size.axis_id) == aid
            and not size.offset
        ) if not isinstance(size, int) else fixed.get(aid) == size  # fmt: skip
        if not same or a.scale != scale[aid]:
            raise InputError(
                f"'{name}': its output's {aid} axis is not the input's (size or scale); "
                "napari-temseg needs outputs at the input's size: use bioimageio.core"
            )


@dataclass(repr=False)
class PackageModel(TrainedModel):
    """A TrainedModel made from a bioimage.io package (:func:`load_package`): it predicts;
    saving it as a .safetensors model file raises a ModelFileError."""

    package: str = ""  # the package's name
    weights: str = ""  # "torchscript" or "onnx"

    def save(self, path: Any, overwrite: bool = False) -> Path:
        raise ModelFileError(ONLY_PREDICTS.format(Path(self.source or self.package).name))

    def metadata(self) -> dict:
        raise ModelFileError(ONLY_PREDICTS.format(Path(self.source or self.package).name))

    def __repr__(self) -> str:
        c = self.classes
        what = "binary" if c.binary else f"{c.k} classes: {', '.join(c.names)}"
        return (
            f"bioimage.io package '{self.package}' ({self.weights}, {self.channels} "
            f"channel(s), context {self.context}, {what})"
        )


def _steps(inp: Any, out: Any, name: str) -> tuple[list, list, str, bool]:
    """(preprocessing, postprocessing functions, intensity_norm, output is logits)."""
    _, dims_in = _layout(inp, name, "input")
    _, dims_out = _layout(out, name, "output")
    pre, norm = _pre_steps(inp)
    post, logits = _post_steps(out, len(_channels(out)), dims_out)
    pre_f = [step_function(s, dims_in, f"'{name}' preprocessing", str(inp.id)) for s in pre]
    post_f = [step_function(s, dims_out, f"'{name}' postprocessing", str(out.id)) for s in post]
    return pre_f, post_f, norm, logits


def load_package(
    path: str | os.PathLike, device: str = "cpu", weights: str | None = None
) -> PackageModel:
    """A local bioimage.io model package (.zip, or a folder with rdf.yaml) as a model that
    ``predict_stack`` runs; ``weights``: "torchscript" or "onnx" (default: torchscript if
    the package has it). Raises InputError / ModelFileError with a one-line message naming
    the fix (see the module docstring for what is run)."""
    path = Path(path)
    name = path.name
    descr = _read(path)
    if len(descr.inputs) != 1:
        raise InputError(
            f"'{name}' takes {len(descr.inputs)} input tensors; napari-temseg runs packages "
            "with one input image"
        )
    inp, out = descr.inputs[0], descr.outputs[0]
    order_in, order_out = _layout(inp, name, "input")[0], _layout(out, name, "output")[0]
    _check_output(out, inp, name)
    fit = _sizes(inp, name)
    small = [lo for lo, step in fit if step == 0 and lo < 32]
    if small:
        raise InputError(
            f"'{name}' takes fixed {small[0]} px inputs, smaller than napari-temseg's 32 px "
            "tiles: run it with bioimageio.core"
        )
    names_in, names_out = _channels(inp), _channels(out)
    channels, context = _context(names_in)
    pre, post, norm, logits = _steps(inp, out, name)
    batch = next((a for a in inp.axes if a.type == "batch"), None)
    plan = Plan(name, order_in, order_out, fit, pre, post, len(names_out), logits,
                loop=batch is None or batch.size == 1)  # fmt: skip
    fmt, entry = _weights(descr, name, weights)
    data = _bytes(entry, name)
    runner = _torchscript(data, name) if fmt == "torchscript" else OnnxRunner(data, name)
    classes = _class_table(names_out)
    cfg = ModelConfig(
        arch=ARCH, encoder=fmt, in_channels=len(names_in), classes=classes.out_channels
    )
    spec = InputSpec(channels, context, (0.0,) * channels, (1.0,) * channels, norm)
    return PackageModel(
        net=package_net(runner, plan).to(device),
        model_cfg=cfg,
        input_spec=spec,
        source=str(path),
        classes=classes,
        package=str(descr.name),
        weights=fmt,
    )


__all__ = ["load_package", "load_any_model", "is_package", "PackageModel", "ARCH"]
