"""ONNX Runtime vs torch on the CPU, on the same tiles.

    python benchmarks/bench_export.py --threads 1 --tiles 16 --tile 512 --reps 3

The default binary model (small-unet, random weights: speed and agreement do not depend on
training) is exported with ``core/interop/formats.py`` (normalisation and sigmoid baked in), and the
same batches of raw tiles go through:

* ``torch (ours)``: the predictor's forward (``core.inference.engine.forward``: inference mode, the
  package's precision policy - bf16 autocast on CPUs with native bf16, else fp32 - and
  memory format - channels_last where ``device.channels_last_pays`` -, normalisation in
  numpy first, sigmoid after);
* ``torch fp32``: the same export as TorchScript (fp32, NCHW);
* ``onnxruntime``: the exported .onnx file, CPUExecutionProvider, the same thread count.

Contestants alternate batch by batch (load drift hits all alike); the script prints seconds
per tile and the ratios, and the max |difference| of the probabilities against torch fp32.
(Commit 1ffe38a had an onnxruntime backend inside ``predict_stack`` and a ``--stack`` mode
timing the whole pipeline; both were removed with the backend, see docs/experiments/.)
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

    from napari_temseg.core.data.volume import normalize
    from napari_temseg.core.device import channels_last_pays, resolve_device
    from napari_temseg.core.inference.engine import forward

    dev = resolve_device("cpu")
    net = model.net.eval()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    exported = torch.jit.load(str(onnx_path.with_suffix(".pt")))

    cl = channels_last_pays(dev, model.model_cfg.resolved().norm_layer)
    if cl:  # as predict_stack runs it
        net = net.to(memory_format=torch.channels_last)

    def ours(x):
        a = torch.from_numpy(np.stack([normalize(t, model.input_spec) for t in x]))
        a = a.contiguous(memory_format=torch.channels_last) if cl else a
        with torch.inference_mode():
            return forward(net, a, False, False, dev, "auto")[0]

    def fp32(x):
        with torch.inference_mode():
            return exported(torch.from_numpy(x)).numpy()[:, 0]

    return {
        "torch (ours)": ours,
        "torch fp32": fp32,
        "onnxruntime": lambda x: sess.run(None, {"input": x})[0][:, 0],
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tiles", type=int, default=16)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from napari_temseg.core.config.model import InputSpec, ModelConfig
    from napari_temseg.core.interop.formats import export
    from napari_temseg.core.modelfile.format import TrainedModel
    from napari_temseg.core.nets.build import build_model

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


if __name__ == "__main__":
    main()
