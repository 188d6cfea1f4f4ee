"""Inference benchmarks; results in docs/experiments/, section "Inference".

Every contestant runs in a fresh subprocess (own imports, own peak RSS) on the same
model file and the same synthetic 2-channel stack; one run prints everything.

* ``compare`` - image Mpix/s of
    (a) ``forward``: the bare network on the same tiles, pre-made in memory (upper bound),
    (b) ``ours``: ``predict_stack`` end to end (lazy reading from a memmap, normalisation,
        tiling, batching, blending, writing),
    (c) ``monai``: MONAI ``sliding_window_inference`` per slice with the same roi,
        overlap, Gaussian mode (sigma 1/8) and batch, on the same normalised input;
  prints ours/forward (goal >= 0.9), ours/MONAI (goal >= 1.5), the peak RSS of each and
  the agreement of (b) and (c) (max / mean abs difference, Dice of the labels).
  Contestants are interleaved ``--repeat`` times (a b c a b c ...) and the best of each
  is kept, so a change in the shared machine's load hits all of them alike.
* ``memory`` - peak RSS predicting a zarr stack ``Z x S x S x 2`` (uint8, channel last)
  into zarr outputs, at several Z (flat in Z = nothing whole-stack is held). ``--net
  pointwise`` swaps the U-Net for a 1x1-conv net to run the full 64 x 2048 x 2048 x 2
  quickly on a CPU (pipeline memory only); ``--net model`` uses the benchmark model.
* ``cuda-full`` - the 156 x 3868 x 4062 x 2 case (CUDA only; skipped elsewhere).

    python benchmarks/bench_predict.py compare --slices 3 --size 1024
    python benchmarks/bench_predict.py memory --z 2 6 --size 2048 --net model
    python benchmarks/bench_predict.py memory --z 16 64 --size 2048 --net pointwise
    python benchmarks/bench_predict.py cuda-full

The model is the default architecture (``config.model.DEFAULT_MODEL``), trained for
``--train-seconds`` on a small synthetic stack (so the agreement check compares
meaningful probabilities, not a random net's ~0.5 everywhere); cached in ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# --------------------------------------------------------------------------- worker side
def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _load(cfg: dict):
    from napari_temseg.core.modelfile.format import load_model

    return load_model(cfg["model"])


def _tiles(vol, spec, cfg: dict):
    """The tiles predict_stack feeds the network (same grid, padding, normalisation)."""
    from _common import tile_grid

    from napari_temseg.core.data.volume import network_input

    Y, X = vol.shape[2:]
    t = cfg["tile"]
    grid = tile_grid((Y, X), t, cfg["overlap"])
    out = []
    for z in range(vol.shape[0]):
        x = network_input(vol, z, spec)
        out.extend(x[:, y : y + t, xx : xx + t] for y, xx in grid)
    return np.stack(out)


def _same_settings(net, cfg: dict):
    """channels_last + the autocast predict_stack uses on this device ("same" contestants)."""
    import contextlib

    import torch

    from napari_temseg.core.device import autocast as _autocast

    dev = torch.device(cfg.get("device", "cpu"))
    net = net.to(dev)
    if not cfg.get("same"):
        return net, (lambda x: x.to(dev)), contextlib.nullcontext
    net = net.to(memory_format=torch.channels_last)
    return (
        net,
        lambda x: x.to(dev).contiguous(memory_format=torch.channels_last),
        lambda: _autocast(dev, "auto"),
    )


def _sync(cfg: dict) -> None:
    import torch

    if cfg.get("device", "cpu").startswith("cuda"):
        torch.cuda.synchronize()


def w_forward(cfg: dict) -> dict:
    import torch

    from napari_temseg.core.data.volume import as_volume

    model = _load(cfg)
    vol = as_volume(np.load(cfg["data"], mmap_mode="r"))
    tiles = torch.from_numpy(_tiles(vol, model.input_spec, cfg))
    b = cfg["batch"]
    net, fmt, amp = _same_settings(model.net.eval(), cfg)
    base = _rss_mb()
    with torch.inference_mode(), amp():
        net(fmt(tiles[:b]))  # warm-up (oneDNN primitive creation), as the others get
        if cfg.get("device", "cpu").startswith("cuda"):
            tiles = tiles.to(cfg["device"])  # pre-made on the device: the pure forward bound
        _sync(cfg)
        t0 = time.perf_counter()
        for i in range(0, len(tiles), b):
            net(fmt(tiles[i : i + b]))
        _sync(cfg)
        sec = time.perf_counter() - t0
    return {"seconds": sec, "tiles": len(tiles), "base_mb": base}


def w_ours(cfg: dict) -> dict:
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.predict import predict_slice, predict_stack
    from napari_temseg.core.progress import run

    model = _load(cfg)
    stack = np.load(cfg["data"], mmap_mode="r")
    pc = PredictConfig(
        tile=cfg["tile"],
        overlap=cfg["overlap"],
        batch=cfg["batch"],
        device=cfg.get("device", "cpu"),
        blend="gaussian",
    )
    predict_slice(model, stack[:1], 0, pc)  # warm-up
    prob = np.zeros((stack.shape[0],) + stack.shape[2:], np.float32)
    base = _rss_mb()
    t0 = time.perf_counter()
    res = run(predict_stack(model, stack, pc, prob_out=prob))
    sec = time.perf_counter() - t0
    np.save(cfg["out"], prob)
    return {"seconds": sec, "tiles": res.tiles, "base_mb": base}


def w_monai(cfg: dict) -> dict:
    import torch
    from monai.inferers import sliding_window_inference

    from napari_temseg.core.data.volume import as_volume, network_input

    model = _load(cfg)
    spec, t = model.input_spec, cfg["tile"]
    net, fmt, amp = _same_settings(model.net.eval(), cfg)
    vol = as_volume(np.load(cfg["data"], mmap_mode="r"))
    prob = np.zeros((vol.shape[0],) + vol.shape[2:], np.float32)

    def predictor(b):
        with amp():
            return torch.sigmoid(net(fmt(b)).float())

    def one(z: int) -> np.ndarray:
        x = torch.from_numpy(network_input(vol, z, spec))[None]
        with torch.inference_mode():
            p = sliding_window_inference(
                x,
                roi_size=(t, t),
                sw_batch_size=cfg["batch"],
                predictor=predictor,
                overlap=cfg["overlap"],
                mode="gaussian",
                sigma_scale=0.125,
                padding_mode="reflect",
            )
        return p[0, 0].float().cpu().numpy()

    one(0)  # warm-up
    base = _rss_mb()
    t0 = time.perf_counter()
    for z in range(vol.shape[0]):
        prob[z] = one(z)
    sec = time.perf_counter() - t0
    np.save(cfg["out"], prob)
    return {"seconds": sec, "base_mb": base}


def _pointwise_model(channels: int):
    import torch
    from torch import nn

    from napari_temseg.core.config.model import InputSpec, ModelConfig
    from napari_temseg.core.modelfile.format import TrainedModel

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(channels, 8, 1), nn.ReLU(), nn.Conv2d(8, 1, 1)).eval()
    spec = InputSpec(channels=channels, norm_lo=(0.0,) * channels, norm_hi=(255.0,) * channels)
    return TrainedModel(net=net, model_cfg=ModelConfig(in_channels=channels), input_spec=spec)


def w_memory(cfg: dict) -> dict:
    from napari_temseg.core import data as io
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.progress import run

    stack = io.read_image(cfg["data"])
    model = _pointwise_model(2) if cfg["net"] == "pointwise" else _load(cfg)
    Z, Y, X = stack.shape[:3]
    prob = io.create_output(cfg["out"] + "/prob.zarr", (Z, Y, X), np.uint8, overwrite=True)
    labels = io.create_output(cfg["out"] + "/labels.zarr", (Z, Y, X), np.uint8, overwrite=True)
    base = _rss_mb()
    t0 = time.perf_counter()
    pc = PredictConfig(
        tile=cfg["tile"],
        overlap=cfg["overlap"],
        batch=cfg["batch"],
        device=cfg.get("device", "cpu"),
        prob_dtype="uint8",
    )
    res = run(predict_stack(model, stack, pc, prob_out=prob, labels_out=labels))
    return {
        "seconds": time.perf_counter() - t0,
        "base_mb": base,
        "tiles": res.tiles,
        "mpix_per_s": res.mpix_per_s,
    }


def w_train(cfg: dict) -> dict:
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.data.synthetic.fibsem import make_fibsem
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    img, mask = make_fibsem(
        (6, 2, 256, 256), seed=1, dtype="uint8"
    )  # same dtype as the test stacks
    tcfg = TrainConfig(
        seconds=cfg["train_seconds"], patch=128, batch=4, device="cpu", val_fraction=0.0
    )
    model = run(fit(img, mask, train_cfg=tcfg))
    model.save(cfg["model"], overwrite=True)
    return {"steps": len(model.history)}


CONTESTANTS = ("forward", "forward-same", "ours", "monai", "monai-same")
LABELS = {
    "forward": "(a) forward fp32, tiles in memory",
    "forward-same": "(a') forward 'same', tiles in memory",
    "ours": "(b) ours, end to end",
    "monai": "(c) MONAI sliding window fp32",
    "monai-same": "(c') MONAI sliding window 'same'",
}
WORKERS = {
    "forward": w_forward,
    "ours": w_ours,
    "monai": w_monai,
    "memory": w_memory,
    "train": w_train,
}


def _worker(name: str, cfg_json: str) -> None:
    cfg = json.loads(cfg_json)
    if cfg.get("threads"):
        import torch

        torch.set_num_threads(cfg["threads"])
    out = WORKERS[name](cfg)
    out["peak_mb"] = _peak_mb()
    print("RESULT " + json.dumps(out), flush=True)


# --------------------------------------------------------------------------- parent side
def spawn(name: str, cfg: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, str(HERE), "_worker", name, json.dumps(cfg)],
        capture_output=True,
        text=True,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"worker {name} failed:\n{proc.stderr[-3000:]}")


def _model(args) -> str:
    from napari_temseg.core.config.model import DEFAULT_MODEL

    # one cached model per default network, so a changed default is retrained, not reused
    path = (
        Path(args.workdir)
        / f"bench-model-{DEFAULT_MODEL.arch}-{DEFAULT_MODEL.resolved().norm_layer}.safetensors"
    )
    if not path.exists():
        print(f"training the benchmark model for {args.train_seconds:.0f} s ...", flush=True)
        spawn(
            "train",
            {"model": str(path), "train_seconds": args.train_seconds, "threads": args.threads},
        )
    return str(path)


def _header(args) -> None:
    import torch

    print(
        f"# {platform.node()} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPU | "
        f"torch {torch.__version__} | CUDA {torch.cuda.is_available()} | "
        f"load {os.getloadavg()[0]:.1f}"
    )


def cmd_compare(args) -> None:
    from napari_temseg.core.data.synthetic.fibsem import make_fibsem

    work = Path(args.workdir)
    data = work / f"stack-{args.slices}x{args.size}.npy"
    if not data.exists():
        img, _ = make_fibsem((args.slices, 2, args.size, args.size), seed=3, dtype="uint8")
        np.save(data, img)
    cfg = dict(
        model=_model(args),
        data=str(data),
        tile=args.tile,
        overlap=args.overlap,
        batch=args.batch,
        threads=args.threads,
        device=args.device,
    )
    Z, Y, X = args.slices, args.size, args.size
    best: dict[str, dict] = {}
    for r in range(args.repeat):
        for name in CONTESTANTS:
            worker, same = name.split("-")[0], name.endswith("-same")
            res = spawn(worker, {**cfg, "same": same, "out": str(work / f"prob-{name}.npy")})
            res["mpix_s"] = Z * Y * X / res["seconds"] / 1e6
            print(
                f"  run {r + 1} {name:8s} {res['seconds']:7.2f} s  {res['mpix_s']:6.3f} Mpix/s  "
                f"peak RSS {res['peak_mb']:6.0f} MB",
                flush=True,
            )
            if name not in best or res["mpix_s"] > best[name]["mpix_s"]:
                best[name] = res
    _report_compare(args, best, work)


def _report_compare(args, best: dict, work: Path) -> None:
    a = np.load(work / "prob-ours.npy")
    b = np.load(work / "prob-monai.npy")
    la, lb = a >= 0.5, b >= 0.5
    dice = 2 * (la & lb).sum() / max(la.sum() + lb.sum(), 1)
    from napari_temseg.core.device import cpu_has_bf16

    o = best["ours"]
    print(
        f"\nstack {args.slices} x {args.size} x {args.size} x 2 (uint8 memmap), "
        f"device {args.device}, tile {args.tile}, "
        f"overlap {args.overlap}, batch {args.batch}, {best['forward']['tiles']} tiles, "
        f"best of {args.repeat}; "
        f"'same' = channels_last + {'bf16 autocast' if cpu_has_bf16() else 'fp32'} "
        "as ours uses here"
    )
    print(f"{'method':40s} {'Mpix/s':>8s} {'peak RSS MB':>12s} {'RSS before run':>15s}")
    for name, r in best.items():
        print(f"{LABELS[name]:40s} {r['mpix_s']:8.3f} {r['peak_mb']:12.0f} {r['base_mb']:15.0f}")
    for ref in ("forward-same", "forward", "monai", "monai-same"):
        goal = (
            "   (goal >= 0.9)"
            if ref == "forward-same"
            else "   (goal >= 1.5)"
            if ref == "monai"
            else ""
        )
        print(f"ours / {ref:13s} = {o['mpix_s'] / best[ref]['mpix_s']:.3f}{goal}")
    d = np.abs(a - b)
    print(
        f"agreement ours vs MONAI fp32: max |dp| {d.max():.4f}, "
        f"99.9th pct {np.percentile(d, 99.9):.4f}, "
        f"mean {d.mean():.5f}, label Dice {dice:.4f} (foreground fraction {la.mean():.3f})"
    )


def _make_zarr(path: Path, Z: int, size: int) -> None:
    """(Z, size, size, 2) uint8 zarr, channel last, written slab by slab (never whole)."""
    import zarr

    from napari_temseg.core.data.synthetic.fibsem import make_fibsem

    if path.exists():
        return
    tile = min(size, 512)
    img, _ = make_fibsem((2, 2, tile, tile), seed=5, dtype="uint8")
    reps = -(-size // tile)
    slab = np.tile(img.transpose(0, 2, 3, 1), (1, reps, reps, 1))[:, :size, :size]
    z = zarr.open(
        str(path), mode="w", shape=(Z, size, size, 2), dtype=np.uint8, chunks=(1, 1024, 1024, 2)
    )
    for i in range(Z):
        z[i] = slab[i % 2]


def cmd_memory(args) -> None:
    work = Path(args.workdir)
    model = _model(args) if args.net == "model" else ""
    rows = []
    for Z in args.z:
        data = work / f"mem-{Z}x{args.size}.zarr"
        _make_zarr(data, Z, args.size)
        res = spawn(
            "memory",
            dict(
                model=model,
                data=str(data),
                out=str(work / "mem-out"),
                net=args.net,
                tile=args.tile,
                overlap=args.overlap,
                batch=args.batch,
                threads=args.threads,
                device=args.device,
            ),
        )
        stack_mb = Z * args.size * args.size * 2 / 2**20
        rows.append((Z, stack_mb, res))
        print(
            f"  Z={Z:4d} stack {stack_mb:7.0f} MB  {res['seconds']:7.1f} s  "
            f"{res['mpix_per_s']:.2f} Mpix/s  "
            f"peak RSS {res['peak_mb']:6.0f} MB (before run {res['base_mb']:.0f} MB)",
            flush=True,
        )
    print(
        f"\nmemory: {args.net} net, {args.size} x {args.size} x 2 uint8 zarr -> 2 uint8 zarr, "
        f"tile {args.tile}, "
        f"batch {args.batch}, device {args.device}"
    )
    print(f"{'Z':>5s} {'stack MB':>9s} {'peak RSS MB':>12s} {'growth over run MB':>19s}")
    for Z, mb, r in rows:
        print(f"{Z:5d} {mb:9.0f} {r['peak_mb']:12.0f} {r['peak_mb'] - r['base_mb']:19.0f}")
    if len(rows) > 1:
        print(
            f"peak RSS ratio Z={rows[-1][0]} / Z={rows[0][0]}: "
            f"{rows[-1][2]['peak_mb'] / rows[0][2]['peak_mb']:.3f} "
            f"(stack ratio {rows[-1][1] / rows[0][1]:.1f})"
        )


def cmd_cuda_full(args) -> None:
    import torch

    if not torch.cuda.is_available():
        print("cuda-full: no CUDA GPU here; skipped (run on a GPU machine)")
        return
    args.z, args.size, args.device = [156], 0, "cuda"
    work = Path(args.workdir)
    data = work / "full-156x3868x4062.zarr"
    if not data.exists():
        import zarr

        from napari_temseg.core.data.synthetic.fibsem import make_fibsem

        img, _ = make_fibsem((2, 2, 1024, 1024), seed=5, dtype="uint8")
        slab = np.tile(img.transpose(0, 2, 3, 1), (1, 4, 4, 1))[:, :3868, :4062]
        z = zarr.open(
            str(data),
            mode="w",
            shape=(156, 3868, 4062, 2),
            dtype=np.uint8,
            chunks=(1, 1024, 1024, 2),
        )
        for i in range(156):
            z[i] = slab[i % 2]
    res = spawn(
        "memory",
        dict(
            model=_model(args),
            data=str(data),
            out=str(work / "full-out"),
            net="model",
            tile=args.tile,
            overlap=args.overlap,
            batch=args.batch,
            device="cuda",
        ),
    )
    print(
        f"full 156 x 3868 x 4062 x 2 on CUDA: {res['seconds']:.1f} s, "
        f"{res['mpix_per_s']:.1f} Mpix/s, "
        f"peak RSS {res['peak_mb']:.0f} MB"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        _worker(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("compare", "memory", "cuda-full"))
    p.add_argument("--workdir", default="/tmp/temseg-bench-predict")
    p.add_argument("--slices", type=int, default=3)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--z", type=int, nargs="+", default=[2, 6])
    p.add_argument("--net", choices=("model", "pointwise"), default="model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--train-seconds", type=float, default=120.0)
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads in the workers (0: default)"
    )
    args = p.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    _header(args)
    {"compare": cmd_compare, "memory": cmd_memory, "cuda-full": cmd_cuda_full}[args.command](args)


if __name__ == "__main__":
    main()
