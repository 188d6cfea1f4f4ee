"""`temseg export`: a trained model as TorchScript, ONNX or a bioimage.io package."""

from __future__ import annotations

import sys


def _add(sub) -> None:
    from ..core.interop.formats import FORMATS

    p = sub.add_parser(
        "export",
        help="write a model as TorchScript (.pt), ONNX (.onnx) or a bioimage.io package (.zip)",
        description="Export MODEL for tools without napari-temseg (Fiji/deepImageJ, "
        "onnxruntime, ilastik, bioimage.io, ...). The exported network takes raw intensities "
        "(N, C x (2 context + 1), H, W) and returns probabilities; it is checked against MODEL "
        "before the file is written. A bioimage.io package (spec 0.5) holds both networks, "
        "test tensors, a cover and a README, and is validated by bioimageio.spec.",
    )
    p.add_argument("model", help="model file (.safetensors)")
    p.add_argument("-o", "--output", required=True, help="file to write (.pt, .onnx or .zip)")
    p.add_argument("--format", choices=FORMATS, default=None, help="default: from the suffix")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--author", help="bioimage.io package: author (default: napari-temseg user)")
    p.add_argument("--license", help="bioimage.io package: SPDX licence id (default: MIT)")


def _cmd(args) -> int:
    from ..core.interop.formats import export
    from ..core.modelfile.format import load_model

    model = load_model(args.model)
    package = {k: v for k in ("author", "license") if (v := getattr(args, k)) is not None}
    path = export(model, args.output, args.format, overwrite=args.overwrite, **package)
    print(f"wrote {path} ({model!r}; checked against the model)", file=sys.stderr)
    return 0


COMMANDS: list = [(_add, _cmd)]

__all__ = ["COMMANDS"]
