"""ONNX Runtime vs torch on the CPU, on the same tiles (issue 13).

    python benchmarks/bench_export.py --threads 1 --tiles 16 --tile 512 --reps 3

The default binary model (small-unet, random weights: speed and agreement do not depend on
training) is exported with ``core/export.py`` (normalisation and sigmoid baked in), and the
same batches of raw tiles go through:

* ``torch (ours)``: the predictor's forward (``core.engine.forward``: inference mode, the
  package's precision policy - bf16 autocast + channels_last on CPUs with native bf16, else
  fp32 - normalisation in numpy first, sigmoid after);
* ``torch fp32``: the same export as TorchScript (fp32, NCHW);
* ``onnxruntime``: the exported .onnx file, CPUExecutionProvider, the same thread count.

Contestants alternate batch by batch (load drift hits all alike); the script prints seconds
per tile and the ratios, and the max |difference| of the probabilities against torch fp32.
``--stack 2 1024``: also the whole pipeline, ``predict_stack`` with ``backend`` torch and
onnxruntime alternating slice by slice (Mpix/s, ratio, max |dp|).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _contestants(model, onnx_path: Path, threads: int) -> dict:
    import onnxruntime as ort
    import torch

    from napari_temseg.core.data import normalize
    from napari_temseg.core.device import resolve_device
    from napari_temseg.core.engine import forward

    dev = resolve_device("cpu")
    net = model.net.eval()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    exported = torch.jit.load(str(onnx_path.with_suffix(".pt")))

    def ours(x):
        a = np.stack([normalize(t, model.input_spec) for t in x])
        with torch.inference_mode():
            return forward(net, torch.from_numpy(a), False, False, dev, "auto")[0]

    def fp32(x):
        with torch.inference_mode():
            return exported(torch.from_numpy(x)).numpy()[:, 0]

    return {
        "torch (ours)": ours,
        "torch fp32": fp32,
        "onnxruntime": lambda x: sess.run(None, {"input": x})[0][:, 0],
    }


def pipeline(model, slices: int, size: int, reps: int) -> None:
    """predict_stack with backend torch vs onnxruntime, slice by slice alternating."""
    import dataclasses

    from napari_temseg.core.config import PredictConfig
    from napari_temseg.core.predict import predict_stack
    from napari_temseg.core.progress import run

    img = (np.random.default_rng(1).random((slices, size, size)) * 255).astype(np.float32)
    cfg = PredictConfig(device="cpu")
    secs, probs = {"torch": 0.0, "onnxruntime": 0.0}, {}
    for rep in range(reps + 1):
        for z in range(slices):
            for b in secs:
                t0 = time.perf_counter()
                r = run(predict_stack(model, img, dataclasses.replace(cfg, backend=b), slices=[z]))
                if rep:
                    secs[b] += time.perf_counter() - t0
                    probs.setdefault(b, {})[z] = r.prob[z]
    mpix = slices * reps * size * size / 1e6
    diff = max(
        float(np.abs(probs["torch"][z] - probs["onnxruntime"][z]).max()) for z in probs["torch"]
    )
    print(
        f"predict_stack, {slices} x {size}^2 px x {reps}: torch {mpix / secs['torch']:.3f} Mpix/s, "
        f"onnxruntime {mpix / secs['onnxruntime']:.3f} Mpix/s, ratio "
        f"{secs['torch'] / secs['onnxruntime']:.2f}x, max |dp| {diff:.1e}"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tiles", type=int, default=16)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--stack", type=int, nargs=2, default=None, metavar=("SLICES", "SIZE"),
                    help="also time predict_stack with each backend on such a stack")  # fmt: skip
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from napari_temseg.core.config import InputSpec, ModelConfig
    from napari_temseg.core.export import export
    from napari_temseg.core.modelfile import TrainedModel
    from napari_temseg.core.models import build_model

    torch.manual_seed(0)
    cfg = ModelConfig().resolved()
    spec = InputSpec(norm_lo=(20.0,), norm_hi=(230.0,))
    model = TrainedModel(build_model(cfg), cfg, spec)
    rng = np.random.default_rng(0)
    tiles = (rng.random((args.tiles, 1, args.tile, args.tile)) * 255).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        path = export(model, Path(d) / "m.onnx")
        export(model, Path(d) / "m.pt")
        runs = _contestants(model, path, args.threads)
        secs = {n: 0.0 for n in runs}
        outs = {n: [] for n in runs}
        for rep in range(args.reps + 1):  # rep 0 warms up (not counted)
            for i in range(0, args.tiles, args.batch):
                x = tiles[i : i + args.batch]
                for name, fn in runs.items():
                    t0 = time.perf_counter()
                    y = fn(x)
                    if rep:
                        secs[name] += time.perf_counter() - t0
                    if rep == 1:
                        outs[name].append(np.asarray(y, np.float32))
    ref = np.concatenate(outs["torch fp32"])
    n = args.tiles * args.reps
    print(
        f"{n} tiles of {args.tile} px per contestant, batch {args.batch}, {args.threads} "
        f"thread(s), torch {torch.__version__}, load {os.getloadavg()[0]:.1f}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    for name in runs:
        diff = float(np.abs(np.concatenate(outs[name]) - ref).max())
        ratio = secs["torch (ours)"] / secs[name]
        print(
            f"{name:14s} {secs[name] / n * 1000:8.1f} ms/tile  speed vs torch (ours) "
            f"{ratio:5.2f}x  max |dp| vs fp32 {diff:.2e}"
        )
    if args.stack:
        pipeline(model, args.stack[0], args.stack[1], args.reps)


if __name__ == "__main__":
    main()
