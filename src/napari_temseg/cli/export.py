"""`temseg export`: a trained model as TorchScript or ONNX for other tools."""

from __future__ import annotations

import sys


def _add(sub) -> None:
    from ..core.export import FORMATS

    p = sub.add_parser(
        "export",
        help="write a model as TorchScript (.pt) or ONNX (.onnx) for other tools",
        description="Export MODEL for tools without napari-temseg (Fiji/deepImageJ, "
        "onnxruntime, ...). The exported network takes raw intensities (N, C x (2 context "
        "+ 1), H, W) and returns probabilities; it is checked against MODEL before the "
        "file is written.",
    )
    p.add_argument("model", help="model file (.safetensors)")
    p.add_argument("-o", "--output", required=True, help="file to write (.pt or .onnx)")
    p.add_argument("--format", choices=FORMATS, default=None, help="default: from the suffix")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")


def _cmd(args) -> int:
    from ..core.export import export
    from ..core.modelfile import load_model

    model = load_model(args.model)
    path = export(model, args.output, args.format, overwrite=args.overwrite)
    print(f"wrote {path} ({model!r}; checked against the model)", file=sys.stderr)
    return 0


COMMANDS: list = [(_add, _cmd)]

__all__ = ["COMMANDS"]
