"""Models other tools can run: TorchScript and ONNX files of a trained model.

The exported network takes what a user has - raw intensities, ``(N, C * (2k + 1), H, W)``
float32 (the image's channels for each slice of the 2.5D window, slice-major; ``H``, ``W``
multiples of 16, or 32 for instance-norm models, times the model's binning) - and returns
probabilities ``(N, 1, H, W)`` (binary, sigmoid) or ``(N, K, H, W)`` (K classes, softmax); a
binned model's graph bins the input and interpolates the probabilities back itself. With
``intensity_norm="dataset"`` (the default) the training data's intensity range is part of the
graph; with ``"image"`` the input must already be scaled to [0, 1] by the image's own 0.5-99.5
% range (the metadata says so). The file carries the model's header (``napari_temseg.json``:
classes, threshold, input spec) - TorchScript as an extra file, ONNX as metadata. Every export
is checked: the exported model and this package's network give the same probabilities on a test
input (max difference <= 1e-4), else nothing is written.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..nets.registry import EXPORT_FORMATS, arch_of

FORMATS = EXPORT_FORMATS
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx", "bioimageio": ".zip"}
TOLERANCE = 1e-4
OPSET = 17  # ONNX opset


def _ranges(spec: Any) -> tuple[Any, Any]:
    """(lo, hi) per network input channel, (1, n, 1, 1): the training data's range repeated
    for each slice of the window ('dataset'), or 0..1 ('image': scaled before)."""
    import torch

    n = spec.network_channels
    if spec.intensity_norm != "dataset":
        return torch.zeros(1, n, 1, 1), torch.ones(1, n, 1, 1)
    reps = n // spec.channels
    lo = torch.tensor(list(spec.norm_lo) * reps, dtype=torch.float32).view(1, n, 1, 1)
    hi = torch.tensor(list(spec.norm_hi) * reps, dtype=torch.float32).view(1, n, 1, 1)
    return lo, hi


def _wrapped(model: Any) -> Any:
    """The network with the input normalisation in front and the activation behind."""
    import torch
    from torch import nn

    lo, hi = _ranges(model.input_spec)
    binary, b = model.classes.binary, model.input_spec.binning

    class Exported(nn.Module):
        def __init__(self, net: Any):
            super().__init__()
            self.net = net
            self.register_buffer("lo", lo)
            self.register_buffer("scale", 1.0 / (hi - lo).clamp_min(1e-12))

        def forward(self, x):
            x = (x - self.lo) * self.scale
            if b > 1:  # binned as in training (core/data/binning.py), interpolated back
                x = nn.functional.avg_pool2d(x, b, ceil_mode=True)
            logits = self.net(x)
            p = torch.sigmoid(logits) if binary else torch.softmax(logits, 1)
            if b > 1:
                p = nn.functional.interpolate(
                    p, scale_factor=b, mode="bilinear", align_corners=False
                )
            return p

    import copy

    net = copy.deepcopy(model.net).float().cpu().eval()
    net = net.to(memory_format=torch.contiguous_format)
    return Exported(net).eval()


def _example(model: Any, size: int = 64) -> Any:
    import torch

    from ..nets.build import min_input_size

    s = max(size, min_input_size(model.model_cfg)) * model.input_spec.binning
    g = torch.Generator().manual_seed(0)
    lo, hi = _ranges(model.input_spec)
    x = torch.rand(2, model.input_spec.network_channels, s, s, generator=g)
    return x * (hi - lo) + lo


def header(model: Any) -> str:
    """The model's header as JSON (what the exported file carries)."""
    from ..config.model import to_dict

    return json.dumps(
        {
            "classes": model.classes.to_dict(),
            "threshold": model.threshold,
            "input": to_dict(model.input_spec),
            "model": to_dict(model.model_cfg),
            "input_layout": "(N, channels x (2 context + 1), H, W) raw intensities, slice-major",
            "output": "probabilities (N, 1, H, W) sigmoid"
            if model.classes.binary
            else f"probabilities (N, {model.classes.k}, H, W) softmax",
        }
    )


def _check_exportable(model: Any, fmt: str) -> None:
    """The architecture's registry entry says which formats it exports to."""
    arch = model.model_cfg.arch
    ok = arch_of(arch).export
    if fmt not in ok:
        other = (
            f"export it as {' or '.join(ok)}"
            if ok
            else "it exports to no other format; keep its .safetensors model file"
        )
        raise InputError(f"a {arch} model cannot be written as {fmt}: {other}")


def export(
    model: Any, path: str | os.PathLike, fmt: str | None = None, *, overwrite=False, **package
) -> Path:
    """Write ``model`` as TorchScript (``.pt``), ONNX (``.onnx``) or a bioimage.io package
    (``.zip``; ``package``: its ``author`` and ``license``, see .bioimageio); ``fmt`` from
    the suffix when None. Checked against this package's network before the file appears."""
    path = Path(path)
    fmt = fmt or {v: k for k, v in SUFFIX.items()}.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise InputError(f"export format must be one of {FORMATS} (or a .pt / .onnx / .zip name)")
    if path.suffix.lower() != SUFFIX[fmt]:
        raise InputError(f"a {fmt} file ends in {SUFFIX[fmt]}: use {path.with_suffix(SUFFIX[fmt])}")
    if path.exists() and not overwrite:
        raise InputError(f"'{path}' exists: choose another name or pass --overwrite")
    _check_exportable(model, fmt)
    if fmt == "bioimageio":
        from .bioimageio.package import export_package

        return export_package(model, path, export, header(model), overwrite=overwrite, **package)
    if package:
        raise InputError(f"{', '.join(package)}: only for a bioimage.io package (.zip)")
    import torch

    wrapped, x = _wrapped(model), _example(model)
    with torch.no_grad():
        ref = wrapped(x).numpy()
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        run = (_torchscript if fmt == "torchscript" else _onnx)(wrapped, x, tmp, header(model))
        got = run(x.numpy())
        err = float(np.max(np.abs(got - ref)))
        if not err <= TOLERANCE:
            raise InputError(f"the {fmt} export differs from the model by {err:.2g}: not written")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _torchscript(wrapped: Any, x: Any, path: Path, meta: str) -> Any:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit is deprecated in favour of torch.export, but
        traced = torch.jit.trace(wrapped, x, check_trace=False)  # checked below, by export()
        torch.jit.save(traced, str(path), _extra_files={"napari_temseg.json": meta})
        loaded = torch.jit.load(str(path))

    def run(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(a)).numpy()

    return run


def _onnx(wrapped: Any, x: Any, path: Path, meta: str) -> Any:
    import torch

    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise InputError(
            "ONNX export needs the onnx and onnxruntime packages: pip install onnx onnxruntime"
        ) from None
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (x,),
            str(path),
            input_names=["input"],
            output_names=["probabilities"],
            dynamic_axes={"input": axes, "probabilities": axes},
            opset_version=OPSET,
            dynamo=False,
        )
    m = onnx.load(str(path))
    m.metadata_props.add(key="napari_temseg", value=meta)
    onnx.save(m, str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda a: session.run(None, {"input": a})[0]


__all__ = ["export", "header", "FORMATS", "SUFFIX"]
