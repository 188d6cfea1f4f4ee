"""A trained model as a bioimage.io model package (spec 0.5, one ``.zip``).

The package holds the same checked TorchScript and ONNX networks as ``temseg export``
(core/interop/formats.py), so it takes **raw intensities**: with ``intensity_norm="dataset"`` the
training data's range is baked into the weights and the only preprocessing step is
``ensure_dtype`` (float32); with ``"image"`` a ``scale_range`` step (0.5 / 99.5 percentiles
per channel of the tile) stands in for this package's per-slice range. The outputs are
probabilities (sigmoid / softmax baked in): ``(batch, 1, y, x)`` for a binary model,
``(batch, K, y, x)`` for K classes. Test tensors are one tile of a synthetic FIB-SEM image
(core/data/synthetic/fibsem.py) in the model's own intensity range, run through the TorchScript
network; the cover shows it beside the output. Needs ``bioimageio.spec`` (``pip install
bioimageio.core``); packages are validated by bioimageio.spec before they appear.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...nets.registry import arch_of

TILE = 128  # test tile (a multiple of 16 and 32, >= every network's minimum size)
DEFAULT_AUTHOR = "napari-temseg user"
DEFAULT_LICENSE = "MIT"
UNET = ("Ronneberger, Fischer, Brox 2015: U-Net: Convolutional Networks for Biomedical "
        "Image Segmentation. MICCAI", "10.1007/978-3-319-24574-4_28")  # fmt: skip


def _spec() -> Any:
    try:
        from bioimageio.spec.model import v0_5
    except ImportError:
        raise InputError(
            "bioimage.io export needs bioimageio.spec: pip install bioimageio.core"
        ) from None
    return v0_5


def test_input(model: Any, size: int = TILE) -> np.ndarray:
    """``(1, C * (2k + 1), size, size)`` float32: a synthetic FIB-SEM tile, slice-major, in
    the training data's intensity range (what a user's raw image would hold)."""
    from ...data.synthetic.fibsem import make_fibsem

    spec = model.input_spec
    img, _ = make_fibsem((2 * spec.context + 1, spec.channels, size, size), seed=3)
    lo = np.asarray(spec.norm_lo, np.float32)[None, :, None, None]
    hi = np.asarray(spec.norm_hi, np.float32)[None, :, None, None]
    raw = lo + img * (hi - lo)  # (2k+1, C, y, x) -> slice-major channels
    return raw.reshape(1, -1, size, size).astype(np.float32)


def _image_norm(x: np.ndarray) -> np.ndarray:
    """bioimage.io ``scale_range`` (0.5 / 99.5 %, per channel over y, x, eps 1e-6)."""
    lo = np.percentile(x, 0.5, axis=(2, 3), keepdims=True)
    hi = np.percentile(x, 99.5, axis=(2, 3), keepdims=True)
    return ((x - lo) / (hi - lo + 1e-6)).astype(np.float32)


def _run_torchscript(path: Path, x: np.ndarray) -> np.ndarray:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit is deprecated (see core/interop/formats.py)
        net = torch.jit.load(str(path))
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def _channel_names(model: Any) -> tuple[list[str], list[str]]:
    spec, k = model.input_spec, model.context
    z = {0: "z", **{d: f"z_minus{-d}" if d < 0 else f"z_plus{d}" for d in range(-k, k + 1) if d}}
    ins = [f"{z[dz]}_ch{c}" for dz in range(-k, k + 1) for c in range(spec.channels)]
    names = list(model.classes.names)
    outs = [re.sub(r"\W+", "_", n) for n in ([names[1]] if model.classes.binary else names)]
    return ins, [n if n.isidentifier() else f"c_{n}" for n in outs]


def _preprocessing(v: Any, model: Any) -> list:
    steps = [v.EnsureDtypeDescr(kwargs=v.EnsureDtypeKwargs(dtype="float32"))]
    if model.input_spec.intensity_norm == "image":
        kw = v.ScaleRangeKwargs(axes=[v.AxisId("y"), v.AxisId("x")], min_percentile=0.5,
                                max_percentile=99.5)  # fmt: skip
        steps.append(v.ScaleRangeDescr(kwargs=kw))
    return steps


def _tensors(v: Any, model: Any, files: dict[str, Path]) -> tuple[Any, Any]:
    from ...nets.build import min_input_size, required_multiple

    ins, outs = _channel_names(model)
    b = model.input_spec.binning  # the package bins and interpolates back itself
    size = v.ParameterizedSize(
        min=min_input_size(model.model_cfg) * b, step=required_multiple(model.model_cfg) * b
    )
    inp = v.InputTensorDescr(
        id=v.TensorId("raw"),
        description="raw intensities, the image's channels for each slice z-k..z+k",
        axes=[
            v.BatchAxis(),
            v.ChannelAxis(channel_names=[v.Identifier(n) for n in ins]),
            v.SpaceInputAxis(id=v.AxisId("y"), size=size),
            v.SpaceInputAxis(id=v.AxisId("x"), size=size),
        ],
        test_tensor=v.FileDescr(source=files["input"]),
        sample_tensor=v.FileDescr(source=files["sample_input"]),
        data=v.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=_preprocessing(v, model),
    )
    ref = {a: v.SizeReference(tensor_id=v.TensorId("raw"), axis_id=v.AxisId(a)) for a in "yx"}
    out = v.OutputTensorDescr(
        id=v.TensorId("probabilities"),
        description="sigmoid probability" if model.classes.binary else "softmax probabilities",
        axes=[
            v.BatchAxis(),
            v.ChannelAxis(channel_names=[v.Identifier(n) for n in outs]),
            v.SpaceOutputAxis(id=v.AxisId("y"), size=ref["y"]),
            v.SpaceOutputAxis(id=v.AxisId("x"), size=ref["x"]),
        ],
        test_tensor=v.FileDescr(source=files["output"]),
        sample_tensor=v.FileDescr(source=files["sample_output"]),
        data=v.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )
    return inp, out


def _cover(x: np.ndarray, y: np.ndarray, model: Any, path: Path) -> Path:
    """Input (middle slice, first channel) and output side by side, 2:1 PNG."""
    from PIL import Image

    from ...config.classes import default_colors

    a = x[0, model.context * model.channels]
    lo, hi = np.percentile(a, (0.5, 99.5))
    gray = np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)
    left = np.repeat(gray[..., None], 3, axis=2)
    if model.classes.binary:
        right = np.repeat(y[0, 0][..., None], 3, axis=2)
    else:
        cols = model.classes.colors or default_colors(model.classes.k)
        rgb = np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in cols])
        right = np.einsum("kyx,kc->yxc", y[0], rgb)
    both = (np.concatenate([left, right], axis=1) * 255).round().astype(np.uint8)
    Image.fromarray(both).save(path)
    return path


def _describe(model: Any) -> tuple[str, str]:
    """(name, description) from the model: architecture, classes, channels, context."""
    cfg, spec = model.model_cfg, model.input_spec
    arch = cfg.arch + (f" {cfg.encoder}" if cfg.encoder else "")
    what = "binary" if model.classes.binary else f"{model.classes.k}-class"
    name = re.sub(r"[^A-Za-z0-9_+\- ()]", " ", f"napari-temseg {arch} {what}")
    classes = ", ".join(model.classes.names)
    desc = (f"{what} semantic segmentation of electron micrographs ({classes}) by a {arch} "
            f"trained with napari-temseg; input {spec.channels} channel(s) x "
            f"{2 * spec.context + 1} slice(s), raw intensities; output probabilities.")  # fmt: skip
    return name[:64].strip(), desc[:512]


def _readme(model: Any, path: Path, header: str) -> Path:
    name, desc = _describe(model)
    spec = model.input_spec
    norm = ("the training data's range (per channel lo/hi below) is part of the network: "
            "give raw intensities" if spec.intensity_norm == "dataset" else
            "scale_range preprocessing (0.5-99.5 % per channel of the tile) approximates "
            "napari-temseg's per-slice range")  # fmt: skip
    k = model.classes.k
    out = "sigmoid (batch, 1, y, x)" if model.classes.binary else f"softmax (batch, {k}, y, x)"
    text = f"""# {name}

{desc}

## Input and output

* input `raw`: (batch, {spec.network_channels}, y, x) float32: the image's {spec.channels}
  channel(s) for each slice z-{spec.context} .. z+{spec.context} (slice-major: channel index =
  (dz + {spec.context}) x {spec.channels} + c); y and x: min + n x step of the description.
* normalisation: {norm}; lo = {list(spec.norm_lo)}, hi = {list(spec.norm_hi)}.
* output `probabilities`: {out}; threshold {model.threshold}.
* Tiles overlap in napari-temseg (blended); tiled prediction elsewhere should overlap too.

## Validation

The test tensors are a synthetic FIB-SEM tile and the TorchScript network's output on it;
the TorchScript and ONNX weights were checked against napari-temseg's network (max abs
difference <= 1e-4). Validate on your own annotated images (Dice / IoU), e.g. with
`temseg predict` then `temseg evaluate PRED TRUTH` in napari-temseg.

## Model header

```json
{header}
```
"""
    path.write_text(text, encoding="utf-8")
    return path


def _weights(v: Any, model: Any, folder: Path, write: Any) -> tuple[Any, Path]:
    """The TorchScript (original) and ONNX (converted) entries, and the TorchScript file."""
    import onnx as onnx_
    import torch

    version = v.Version(torch.__version__.split("+")[0])
    ts = write(model, folder / "weights.pt", "torchscript")
    onnx = write(model, folder / "weights.onnx", "onnx")
    opset = max(
        o.version for o in onnx_.load(str(onnx)).opset_import if o.domain in ("", "ai.onnx")
    )
    return v.WeightsDescr(
        torchscript=v.TorchscriptWeightsDescr(source=ts, pytorch_version=version),
        onnx=v.OnnxWeightsDescr(source=onnx, opset_version=opset, parent="torchscript"),
    ), ts


def _descr(model: Any, folder: Path, write: Any, header: str, author: str, license: str) -> Any:
    """The model description, its files written into ``folder`` (``write``: the
    checked TorchScript / ONNX writer; ``header``: the model's header JSON)."""
    import tifffile

    v = _spec()
    weights, ts = _weights(v, model, folder, write)
    x = test_input(model)
    image = model.input_spec.intensity_norm == "image"  # the package's scale_range first
    y = _run_torchscript(ts, _image_norm(x) if image else x)
    files = {}
    for name, a in (("input", x), ("output", y)):
        files[name] = folder / f"test_{name}.npy"
        np.save(files[name], a)
        files[f"sample_{name}"] = folder / f"sample_{name}.tif"
        tifffile.imwrite(files[f"sample_{name}"], a, photometric="minisblack")
    inp, out = _tensors(v, model, files)
    name, desc = _describe(model)
    paper = arch_of(model.model_cfg.arch).cite
    cites = [UNET, *([paper] if paper else [])]
    return v.ModelDescr(
        name=name,
        description=desc,
        authors=[v.Author(name=author)],
        cite=[v.CiteEntry(text=t, doi=v.Doi(d)) for t, d in cites],
        license=license,
        documentation=v.FileDescr(source=_readme(model, folder / "README.md", header)),
        covers=[v.FileDescr(source=_cover(x, y, model, folder / "cover.png"))],
        tags=["napari-temseg", "unet", "electron-microscopy", "semantic-segmentation", "2d"],
        inputs=[inp],
        outputs=[out],
        weights=weights,
    )


def export_package(
    model: Any,
    path: str | os.PathLike,
    write: Any,
    header: str,
    *,
    overwrite: bool = False,
    author: str = DEFAULT_AUTHOR,
    license: str = DEFAULT_LICENSE,
) -> Path:
    """Write ``model`` as a validated bioimage.io model package (``.zip``); called by
    interop.formats's ``export`` (``write``: that function, ``header``: the model's header)."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise InputError(f"a bioimage.io package ends in .zip: use {path.with_suffix('.zip')}")
    if path.exists() and not overwrite:
        raise InputError(f"'{path}' exists: choose another name or pass --overwrite")
    v = _spec()
    from bioimageio.spec import save_bioimageio_package

    try:
        v.LicenseId(license)
    except ValueError:
        raise InputError(f"'{license}' is not an SPDX licence id (e.g. MIT, CC-BY-4.0)") from None

    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        with tempfile.TemporaryDirectory() as d:
            try:
                descr = _descr(model, Path(d), write, header, author, license)
            except ValueError as e:  # pydantic's ValidationError: a field bioimage.io refuses
                raise InputError(f"not a valid bioimage.io description: {e}") from None
            save_bioimageio_package(descr, output_path=tmp)  # loads and validates it again
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


__all__ = ["export_package", "test_input", "DEFAULT_AUTHOR", "DEFAULT_LICENSE"]
