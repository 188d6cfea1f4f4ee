"""Multi-class benchmarks; numbers in docs/experiments/ "Multi-class".

* ``synthetic`` - the synthetic 4-phase FIB-SEM stack (``core/synthetic_phases``): train
  with the defaults on 3 annotated slices for ``--seconds`` (CPU), predict the whole stack,
  per-class IoU and mean IoU on the slices never annotated. Variants race in the same run
  (``--variant name:key=value,...`` with TrainConfig keys), one after the other.
* ``speed`` - prediction throughput of a K=4 model vs the binary model of the same
  architecture on the same stack, alternating runs in one process (ratio per round).
* ``memory`` - peak RSS predicting a 2048 x 2048 x 2-channel zarr stack with K=4 into zarr
  outputs, Z=4 vs Z=16, each in a fresh process.

    python benchmarks/bench_multiclass.py synthetic --seconds 120
    python benchmarks/bench_multiclass.py speed --rounds 5
    python benchmarks/bench_multiclass.py memory
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _variants(items: list[str]) -> list[tuple[str, dict]]:
    out = [("defaults", {})]
    for v in items:
        name, _, kv = v.partition(":")
        opts = {}
        for pair in filter(None, kv.split(",")):
            k, _, val = pair.partition("=")
            try:
                opts[k] = json.loads(val)
            except ValueError:
                opts[k] = val
        out.append((name, opts))
    return out


def cmd_synthetic(args) -> None:
    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.data.synthetic.phases import PHASE_COLORS, PHASE_NAMES, make_phases
    from napari_temseg.core.evaluation.metrics import evaluate_classes
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    img, lab = make_phases((args.z, args.size, args.size), channels=2, seed=args.seed)
    if args.channel is not None:
        img = img[:, args.channel : args.channel + 1]
    annotated = [int(round(z)) for z in np.linspace(2, args.z - 3, 3)]
    sparse = np.zeros_like(lab)
    for z in annotated:
        sparse[z] = lab[z]
    unseen = [z for z in range(args.z) if z not in annotated]
    table = ClassTable(PHASE_NAMES, PHASE_COLORS)
    print(f"stack {img.shape}, annotated slices {annotated}, unseen {len(unseen)} slices")
    for name, opts in _variants(args.variant):
        model_keys = {f.name for f in dataclasses.fields(ModelConfig)}
        mcfg = ModelConfig(**{k: v for k, v in opts.items() if k in model_keys})
        cfg = TrainConfig(
            **{"seconds": args.seconds, **{k: v for k, v in opts.items() if k not in model_keys}}
        )
        t0 = time.monotonic()
        model = run(
            fit(img, sparse, train_cfg=cfg, model_cfg=mcfg, classes=table, annotated=annotated)
        )
        t_train = time.monotonic() - t0
        res = run(predict_stack(model, img, PredictConfig(**json.loads(args.predict))))
        ev = evaluate_classes(res.labels[unseen], lab[unseen], PHASE_NAMES)
        o = ev["overall"]
        per = " ".join(f"{c['name'][:10]}={c['iou']:.3f}" for c in o["classes"])
        print(
            f"{name:12s} train {t_train:5.0f}s epochs {len(model.history):3d} | unseen: "
            f"mIoU {o['mean_iou']:.3f} mIoU(fg) {o['mean_iou_fg']:.3f} acc {o['accuracy']:.3f}"
            f" | {per}",
            flush=True,
        )


def cmd_speed(args) -> None:
    import torch

    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.config.model import InputSpec, ModelConfig
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.modelfile.format import TrainedModel
    from napari_temseg.core.nets.build import build_model
    from napari_temseg.core.progress import run

    torch.manual_seed(0)
    img = np.random.default_rng(0).random((args.z, 2, args.size, args.size), np.float32)
    spec = InputSpec(channels=2, norm_lo=(0.0, 0.0), norm_hi=(1.0, 1.0))
    models = {}
    for k in (2, 4):
        table = ClassTable.default(k)
        mc = ModelConfig(in_channels=2, classes=table.out_channels)
        models[k] = TrainedModel(build_model(mc).eval(), mc, spec, classes=table)
    cfg = PredictConfig(device="cpu", prob_dtype="float16")
    ratios = []
    for r in range(args.rounds):
        t = {}
        for k in (2, 4) if r % 2 == 0 else (4, 2):
            t0 = time.perf_counter()
            run(predict_stack(models[k], img, cfg))
            t[k] = time.perf_counter() - t0
        ratios.append(t[2] / t[4])
        print(
            f"round {r}: binary {t[2]:.2f}s  K=4 {t[4]:.2f}s  throughput K4/binary {ratios[-1]:.3f}"
        )
    print(f"median throughput ratio K=4 / binary: {np.median(ratios):.3f}")


def _memory_worker(z: int, size: int, work: str) -> None:
    import zarr

    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.config.model import InputSpec, ModelConfig
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.modelfile.format import TrainedModel
    from napari_temseg.core.nets.build import build_model
    from napari_temseg.core.progress import run

    src = zarr.open(f"{work}/img{z}.zarr", mode="r")
    table = ClassTable.default(4)
    mc = ModelConfig(in_channels=2, classes=4)
    spec = InputSpec(channels=2, norm_lo=(0.0, 0.0), norm_hi=(255.0, 255.0))
    model = TrainedModel(build_model(mc).eval(), mc, spec, classes=table)
    prob = zarr.open(
        f"{work}/prob{z}.zarr",
        mode="w",
        shape=(z, 4, size, size),
        chunks=(1, 1, 512, 512),
        dtype="uint8",
    )
    lab = zarr.open(
        f"{work}/lab{z}.zarr", mode="w", shape=(z, size, size), chunks=(1, 512, 512), dtype="uint8"
    )
    run(predict_stack(model, src, PredictConfig(device="cpu"), prob_out=prob, labels_out=lab))
    print(
        json.dumps({"z": z, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    )


def cmd_memory(args) -> None:
    import tempfile

    import zarr

    with tempfile.TemporaryDirectory() as work:
        for z in (4, 16):
            a = zarr.open(
                f"{work}/img{z}.zarr",
                mode="w",
                shape=(z, 2, args.size, args.size),
                chunks=(1, 1, 512, 512),
                dtype="uint8",
            )
            rng = np.random.default_rng(0)
            for i in range(z):
                a[i] = rng.integers(0, 255, (2, args.size, args.size), dtype=np.uint8)
            out = subprocess.run(
                [sys.executable, __file__, "_memory", str(z), str(args.size), work],
                capture_output=True,
                text=True,
                check=True,
            )
            print(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory":
        _memory_worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synthetic")
    s.add_argument("--seconds", type=float, default=120)
    s.add_argument("--z", type=int, default=16)
    s.add_argument("--size", type=int, default=384)
    s.add_argument("--seed", type=int, default=2024)
    s.add_argument("--channel", type=int, default=None, help="one detector only (0 or 1)")
    s.add_argument("--variant", action="append", default=[])
    s.add_argument("--predict", default='{"device": "cpu"}', help="PredictConfig as JSON")
    s = sub.add_parser("speed")
    s.add_argument("--z", type=int, default=4)
    s.add_argument("--size", type=int, default=1024)
    s.add_argument("--rounds", type=int, default=5)
    s = sub.add_parser("memory")
    s.add_argument("--size", type=int, default=2048)
    args = p.parse_args()
    {"synthetic": cmd_synthetic, "speed": cmd_speed, "memory": cmd_memory}[args.cmd](args)


if __name__ == "__main__":
    main()
