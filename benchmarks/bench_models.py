"""Model choice benchmark: which architecture should be the default?

For every candidate (native ``small-unet``, ``unet`` base 16 / 32, ``resunet``, smp
``Unet`` with ``resnet18`` / ``mobilenet_v2`` encoders, all random init) it prints

* parameters and forward GMAC per 256 x 256 image (a device-independent cost),
* training steps/s (batch 4, 256 x 256, CPU: forward + backward + AdamW),
* forward (inference) Mpix/s (batch 4, 256 x 256, CPU, no grad),
* the held-out Dice reached with the same training-time budget on a synthetic
  FIB-SEM stack (``synthetic.make_fibsem``) with a plain loop: flips (our
  ``Augmenter("flips")``), BCE + Dice loss, AdamW, random 256 x 256 crops.

The Dice runs are interleaved round robin in slices of ``--slice`` seconds and every
model is charged only for its own steps, so the changing load of a shared machine
hits all candidates alike. Everything is measured in this one run.

Run from the repository root::

    python benchmarks/bench_models.py --seconds 60
    python benchmarks/bench_models.py --seconds 30 --models small-unet,unet16
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CANDIDATES = {
    "small-unet": dict(arch="small-unet"),
    "unet16": dict(arch="unet", base_width=16),
    "unet32": dict(arch="unet", base_width=32),
    "resunet": dict(arch="resunet"),
    "smp-resnet18": dict(arch="Unet", encoder="resnet18"),
    "smp-mobilenet_v2": dict(arch="Unet", encoder="mobilenet_v2"),
}


def _build(name: str, in_ch: int):
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.nets.build import build_model

    return build_model(ModelConfig(in_channels=in_ch, **CANDIDATES[name]))


def _loss(logits, y):
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, y)
    p = logits.sigmoid()
    dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    return bce + dice


def _gmac(name: str, in_ch: int, size: int) -> float:
    """Forward multiply-accumulates per image, counted on the meta device (no compute)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net = _build(name, in_ch).to("meta").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(torch.zeros(1, in_ch, size, size, device="meta"))
    return fc.get_total_flops() / 2e9


def _clock() -> float:
    """Idle-equivalent seconds: process CPU time / threads.

    On a shared machine wall time depends on everybody's load; CPU time divided by
    the number of compute threads is what the same work takes on an idle machine
    with that many cores (approximately: memory bandwidth is still shared).
    """
    import torch

    return time.process_time() / torch.get_num_threads()


def _timed(fn, reps: int) -> tuple[float, float]:
    """(idle-equivalent, wall) seconds per call."""
    fn()  # warm-up
    c, t = _clock(), time.perf_counter()
    for _ in range(reps):
        fn()
    return (_clock() - c) / reps, (time.perf_counter() - t) / reps


def throughput(name: str, in_ch: int, batch: int, size: int, reps: int) -> dict:
    import torch
    from _common import count_parameters

    torch.manual_seed(0)
    net = _build(name, in_ch)
    params, gmac = count_parameters(net), _gmac(name, in_ch, size)
    x = torch.randn(batch, in_ch, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.5).float()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def train_step():
        opt.zero_grad(set_to_none=True)
        _loss(net(x), y).backward()
        opt.step()

    net.train()
    t_train, w_train = _timed(train_step, reps)
    net.eval()
    with torch.no_grad():
        t_fwd, w_fwd = _timed(lambda: net(x), reps)
    mpix = batch * size * size / 1e6
    return dict(
        params=params,
        gmac=gmac,
        steps_s=1 / t_train,
        mpix_s=mpix / t_fwd,
        wall_steps_s=1 / w_train,
        wall_mpix_s=mpix / w_fwd,
    )


class Contestant:
    """One model trained in time slices; ``used`` counts only its own (idle-equivalent) time."""

    def __init__(self, name: str, data, batch: int, patch: int, seed: int):
        import torch

        from napari_temseg.core.training.augment.augmenter import Augmenter

        torch.manual_seed(seed)
        self.name, self.data, self.batch, self.patch = name, data, batch, patch
        self.net = _build(name, data[0].shape[1])
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-3, weight_decay=1e-4)
        self.aug = Augmenter("flips", seed=seed)
        self.rng = np.random.default_rng(seed)
        self.used, self.steps = 0.0, 0

    def _batch(self):
        import torch

        img, mask, train_z = self.data[0], self.data[1], self.data[2]
        h, w = img.shape[-2:]
        xs, ys = [], []
        for _ in range(self.batch):
            z = self.rng.choice(train_z)
            r, c = (
                self.rng.integers(0, h - self.patch + 1),
                self.rng.integers(0, w - self.patch + 1),
            )
            xs.append(img[z, :, r : r + self.patch, c : c + self.patch])
            ys.append(mask[z, None, r : r + self.patch, c : c + self.patch])
        x = torch.from_numpy(np.stack(xs))
        y = torch.from_numpy(np.stack(ys).astype(np.float32))
        return self.aug(x, y, torch.ones_like(y))

    def run(self, seconds: float) -> None:
        self.net.train()
        t0 = _clock()
        while _clock() - t0 < seconds:
            x, y, _ = self._batch()
            self.opt.zero_grad(set_to_none=True)
            _loss(self.net(x), y).backward()
            self.opt.step()
            self.steps += 1
        self.used += _clock() - t0

    def dice(self, val_z) -> float:
        import torch

        from napari_temseg.core.evaluation.metrics import Counts, counts

        self.net.eval()
        total = Counts()
        with torch.no_grad():
            for z in val_z:
                logits = self.net(torch.from_numpy(self.data[0][z : z + 1]))
                total = total + counts(logits[0, 0].numpy() > 0, self.data[1][z])
        return total.dice


def dice_race(names, seconds: float, slice_s: float, batch: int, patch: int, size: int):
    from napari_temseg.core.data.synthetic.fibsem import make_fibsem

    img, mask = make_fibsem((12, 2, size, size), seed=0)
    train_z, val_z = list(range(0, 9)), [9, 10, 11]
    players = [Contestant(n, (img, mask, train_z), batch, patch, seed=0) for n in names]
    while any(p.used < seconds for p in players):
        for p in players:
            if p.used < seconds:
                p.run(min(slice_s, seconds - p.used))
    return {p.name: dict(dice=p.dice(val_z), steps=p.steps, used=p.used) for p in players}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(CANDIDATES))
    ap.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="idle-equivalent training budget per model in the Dice race",
    )
    ap.add_argument("--slice", type=float, default=5.0, help="round-robin time slice (s)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--patch", type=int, default=256, help="patch for the throughput columns")
    ap.add_argument("--race-patch", type=int, default=256, help="patch for the Dice race")
    ap.add_argument("--image", type=int, default=384, help="synthetic slice size (px)")
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions for throughput")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} threads, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}; "
        "times are idle-equivalent (CPU time / threads)"
    )
    rows = {n: throughput(n, 2, args.batch, args.patch, args.reps) for n in names}
    race = dice_race(names, args.seconds, args.slice, args.batch, args.race_patch, args.image)
    sec, rp = f"{args.seconds:.0f} s", f"{args.race_patch}²"
    print(
        f"\n| model | params (M) | GMAC / {args.patch}² image | train steps/s (b{args.batch}, "
        f"{args.patch}², CPU) | forward Mpix/s (CPU) | steps in {sec} ({rp}) "
        f"| held-out Dice after {sec} |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in names:
        r, d = rows[n], race[n]
        print(
            f"| {n} | {r['params'] / 1e6:.2f} | {r['gmac']:.2f} | {r['steps_s']:.3f} | "
            f"{r['mpix_s']:.2f} | {d['steps']} | {d['dice']:.3f} |"
        )
    print(
        "\nwall clock (shared machine):",
        ", ".join(
            f"{n} {rows[n]['wall_steps_s']:.3f} steps/s {rows[n]['wall_mpix_s']:.2f} Mpix/s"
            for n in names
        ),
    )
    best = max(names, key=lambda n: race[n]["dice"])
    print(f"best Dice within the budget: {best}; load avg at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
