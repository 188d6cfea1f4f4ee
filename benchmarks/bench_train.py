"""Training benchmarks: speed and accuracy of fit() against plain loops; numbers in
docs/experiments/.

Three sub-commands, each a ratio / difference measured in ONE run on the same input:

* ``throughput`` - fit()'s training steps/s (sampling + augmentation + step, incl. its
  per-epoch validation) vs a bare forward+backward+optimiser loop on pre-made tensors
  of the same shape, same network, loss and optimiser. The two alternate every
  ``--chunk`` steps (and, with ``--thread-list``, torch thread counts alternate too)
  so the shared machine's load drift hits all alike. Then a breakdown: sampler,
  augmentation, bare step and validation timed alone.
* ``isbi`` - ISBI 2012: train on sections 0-14, membrane Dice on sections 15-19
  (never seen in training, not used for model selection: fit() holds out its own
  validation sections from 0-14, as a user's run would).
* ``emps`` - EMPS particles: deterministic ~20 % held-out split by name, fit() on the
  list of differently sized micrographs, particle Dice on the held-out images.

fit()'s models are scored through the default prediction path (``predict_stack`` with
``PredictConfig(device="cpu")``: tiles, calibrated norm statistics), as a user gets them
(before session 10 by one whole-image forward pass, which differs with instance norm:
ISBI seed 2, 0.765 whole-image vs 0.799 default path); the plain loop whole-image.

For ``isbi`` / ``emps`` every contestant (fit() with the defaults, any ``--variant``,
and a plain hand-written smp U-Net loop) gets the same training budget in seconds.
They are interleaved in time slices of ``--slice`` seconds (round robin) so that the
shared machine's changing load hits all of them alike; fit() runs under its own
virtual clock (``train.time`` is replaced by a clock that stops while the others run),
so its time budget, LR schedule and history see only its own time.

Run from the repository root (data in ../shared/data); the commands of the recorded
numbers (docs/experiments/, "Training")::

    python benchmarks/bench_train.py throughput --seconds 120 --thread-list 2 1
    python benchmarks/bench_train.py --threads 1 isbi --seconds 180
    python benchmarks/bench_train.py --threads 1 emps --seconds 60 --eval-limit 15

``--tiles N`` adds the tile-invariance check (labels must not depend on the tile size): each
fit() model predicts held-out images through ``predict_stack`` with tile 256 and tile 512;
the label Dice between the two and the largest probability difference are printed
(``TILES`` lines). With ``TEMSEG_BENCH_SAVE=<folder>`` every fit() contestant's model is
saved there as ``<name>.safetensors``.

Tuning: extra fit() contestants race in the same run, e.g.::

    python benchmarks/bench_train.py --threads 1 isbi --seconds 180 \
        --variant "flips:augment=flips" --variant "k0:context=0"

A variant is ``name:key=value,key=value`` with keys of TrainConfig (lr, patch, augment,
batch, ...) plus ``arch``, ``encoder``, ``base_width``, ``depth``, ``norm_layer`` and ``context``.
``--all key=value,...`` applies to every fit() contestant, the defaults included (a second
seed: ``--all seed=1``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _realdata
from _common import machine, pad_to, torch_threads

PREFILLED = 2  # prefetch queue depth in train._Prefetcher


# --------------------------------------------------------------------------- helpers
def predict_full(net, x: np.ndarray, multiple: int) -> np.ndarray:
    """Whole-image logits -> foreground (prob > 0.5) for a (C, H, W) float32 input."""
    import torch

    xp, (h, w) = pad_to(x, multiple)
    net.eval()
    with torch.inference_mode():
        logits = net(torch.from_numpy(np.ascontiguousarray(xp))[None])[0, 0, :h, :w]
    return (logits > 0).numpy()


def _dice_report(preds: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    from napari_temseg.core.evaluation.metrics import Counts, counts

    per = [counts(p, t) for p, t in zip(preds, truths, strict=False)]
    total = sum(per, Counts())
    return {
        "dice": total.dice,
        "iou": total.iou,
        "mean_image_dice": float(np.mean([c.dice for c in per])),
        "precision": total.precision,
        "recall": total.recall,
    }


def all_foreground_dice(truths: list[np.ndarray]) -> float:
    """Dice of predicting foreground everywhere (2f / (1 + f)), the trivial baseline."""
    f = sum(int(t.sum()) for t in truths) / sum(t.size for t in truths)
    return 2 * f / (1 + f)


# --------------------------------------------------------------------------- contestants
class _VClock:
    """A ``time`` stand-in for train.py whose monotonic() stops while others run."""

    def __init__(self) -> None:
        self.offset, self.paused_at = 0.0, None

    def monotonic(self) -> float:
        return time.monotonic() - self.offset

    def pause(self) -> None:
        self.paused_at = time.monotonic()

    def resume(self) -> None:
        if self.paused_at is not None:
            self.offset += time.monotonic() - self.paused_at
            self.paused_at = None


class Ours:
    """fit() with a TrainConfig / ModelConfig / context, advanced slice by slice.

    ``classes``: a ClassTable for multi-class masks (None: binary, as before).
    """

    def __init__(
        self,
        name: str,
        images,
        masks,
        seconds: float,
        context: int,
        overrides: dict,
        classes=None,
    ):
        from napari_temseg.core.config.options import train_configs
        from napari_temseg.core.training.loop import fit

        self.context = int(overrides.get("context", context))
        values = {"seconds": seconds, "device": "cpu", **overrides, "context": self.context}
        self.train_cfg, self.model_cfg = train_configs(values)  # as every front end (recipes)
        self.name, self.clock = name, _VClock()
        self.gen = fit(
            images, masks, train_cfg=self.train_cfg, model_cfg=self.model_cfg, classes=classes
        )
        self.steps, self.elapsed, self.setup_s, self.model, self.last = 0, 0.0, None, None, None

    @property
    def finished(self) -> bool:
        return self.model is not None

    def advance(self, until: float) -> None:
        """Run steps until fit's own elapsed time passes ``until`` seconds (or it returns)."""
        import napari_temseg.core.training.loop as T

        saved, T.time = T.time, self.clock
        self.clock.resume()
        try:
            t_start = time.monotonic()
            while not self.finished and (self.last is None or self.last.elapsed < until):
                try:
                    self.last = next(self.gen)
                    self.steps = self.last.step
                    if self.setup_s is None:
                        self.setup_s = time.monotonic() - t_start - self.last.elapsed
                except StopIteration as done:
                    self.model = done.value
                    self._save()
        finally:
            self.clock.pause()
            T.time = saved
        self.elapsed = self.last.elapsed if self.last else 0.0

    def _save(self) -> None:
        """Keep the trained model when ``TEMSEG_BENCH_SAVE`` names a folder (re-analysis)."""
        folder = os.environ.get("TEMSEG_BENCH_SAVE")
        if folder and self.model is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.model.save(Path(folder) / f"{self.name}.safetensors")

    def describe(self) -> str:
        c, m = self.train_cfg, self.model_cfg
        arch = m.arch + (f"/{m.encoder}" if m.encoder else f", depth {m.levels}")
        if self.model is not None:  # binning: the option's or auto's choice
            arch += f", binning {self.model.input_spec.binning}"
        return (
            f"fit(): {arch}, context {self.context}, patch {c.patch}, batch {c.batch}, lr {c.lr}, "
            f"{c.optimizer}, loss {c.loss}, augment '{c.augment}', val_fraction {c.val_fraction}"
        )

    def predict(self, image: np.ndarray, slices: list[int]) -> list[np.ndarray]:
        """``slices`` labelled through the default prediction path, in one call (the norm
        statistics are calibrated once per image)."""
        prob = _realdata.default_probabilities(self.model, image, slices)
        return list(prob.reshape(len(slices), *image.shape[-2:]) > self.model.threshold)


class Reference:
    """The plain loop: smp.Unet(resnet18, random init), x/255, random crops + flips,
    BCE+Dice, Adam.
    """

    name = "plain smp loop"

    def __init__(
        self,
        images: list[np.ndarray],
        masks: list[np.ndarray],
        seconds: float,
        patch: int = 256,
        batch: int = 4,
        lr: float = 1e-3,
        seed: int = 0,
    ):
        import segmentation_models_pytorch as smp
        import torch

        torch.manual_seed(seed)
        self.images, self.masks, self.seconds = images, masks, seconds
        self.patch, self.batch = patch, batch
        self.rng = np.random.default_rng(seed)
        areas = np.array([im.size for im in images], np.float64)
        self.p = areas / areas.sum()
        self.net = smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.steps, self.elapsed, self.setup_s = 0, 0.0, 0.0

    @property
    def finished(self) -> bool:
        return self.elapsed >= self.seconds

    def describe(self) -> str:
        return (
            f"plain loop: smp.Unet resnet18 (random init), x/255, random {self.patch} crops, "
            f"random h/v flips, BCE + soft Dice, Adam lr 1e-3 constant, batch {self.batch}"
        )

    def _crop(self):
        k = int(self.rng.choice(len(self.images), p=self.p))
        im, m, p = self.images[k], self.masks[k], self.patch
        h, w = im.shape
        top, left = (
            int(self.rng.integers(max(1, h - p + 1))),
            int(self.rng.integers(max(1, w - p + 1))),
        )
        x = im[top : top + p, left : left + p].astype(np.float32) / 255.0
        y = m[top : top + p, left : left + p].astype(np.float32)
        x = np.pad(x, ((0, p - x.shape[0]), (0, p - x.shape[1])), mode="reflect")
        y = np.pad(y, ((0, p - y.shape[0]), (0, p - y.shape[1])), mode="reflect")
        if self.rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        if self.rng.random() < 0.5:
            x, y = x[::-1], y[::-1]
        return x, y

    def step(self) -> float:
        import torch
        import torch.nn.functional as F

        crops = [self._crop() for _ in range(self.batch)]
        x = torch.from_numpy(np.stack([c[0] for c in crops])[:, None].copy())
        y = torch.from_numpy(np.stack([c[1] for c in crops])[:, None].copy())
        self.net.train()
        logits = self.net(x)
        prob = torch.sigmoid(logits)
        dice = 1 - (2 * (prob * y).sum() + 1) / (prob.sum() + y.sum() + 1)
        loss = F.binary_cross_entropy_with_logits(logits, y) + dice
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def advance(self, until: float) -> None:
        while not self.finished and self.elapsed < until:
            t = time.monotonic()
            self.step()
            self.steps += 1
            self.elapsed += time.monotonic() - t

    def predict(self, image: np.ndarray, slices: list[int]) -> list[np.ndarray]:
        imgs = [image[z] if image.ndim == 3 else image for z in slices]
        return [predict_full(self.net, img[None].astype(np.float32) / 255.0, 32) for img in imgs]


def parse_variant(text: str) -> tuple[str, dict]:
    """``name:key=value,key=value`` -> (name, overrides) with int/float/None parsing."""
    name, _, rest = text.partition(":")
    out: dict = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, _, val = item.partition("=")
        for conv in (int, float):
            try:
                out[key.strip()] = conv(val)
                break
            except ValueError:
                continue
        else:
            out[key.strip()] = None if val.lower() == "none" else val
    return name.strip(), out


def race(contestants: list, seconds: float, time_slice: float) -> None:
    """Round robin in slices of ``time_slice`` seconds until every contestant is done."""
    t0, until = time.monotonic(), 0.0
    while not all(c.finished for c in contestants):
        until = min(seconds, until + time_slice)
        for c in contestants:
            c.advance(until if until < seconds else float("inf"))
        done = " ".join(f"{c.name}={c.steps}" for c in contestants)
        print(
            f"  [{time.monotonic() - t0:6.0f}s wall] own time {until:5.0f}s, steps: {done}",
            flush=True,
        )


def _contestants(args, images, masks, ref_images, ref_masks, context: int) -> list:
    base = parse_variant(f"all:{args.all or ''}")[1]
    out = [Ours("ours", images, masks, args.seconds, context, base)]
    for v in args.variant or []:
        name, ov = parse_variant(v)
        out.append(Ours(name, images, masks, args.seconds, context, {**base, **ov}))
    if not args.no_reference:
        out.append(Reference(ref_images, ref_masks, args.seconds))
    return out


def _report(contestants: list, results: dict, baseline: float, what: str) -> None:
    print(f"\n{what}; all-foreground baseline Dice {baseline:.3f}")
    print(
        f"{'contestant':<16} {'steps':>6} {'train s':>8} {'setup s':>8} {'Dice':>7} {'IoU':>7} "
        f"{'img Dice':>8} {'prec':>6} {'recall':>6}"
    )
    for c in contestants:
        r = results[c.name]
        print(
            f"{c.name:<16} {c.steps:>6} {c.elapsed:>8.0f} {c.setup_s or 0:>8.1f} "
            f"{r['dice']:>7.3f} {r['iou']:>7.3f} {r['mean_image_dice']:>8.3f} "
            f"{r['precision']:>6.3f} {r['recall']:>6.3f}"
        )
    for c in contestants:
        print(f"  {c.name}: {c.describe()}")
        if isinstance(c, Ours):
            vd = [round(h.get("val_dice", float("nan")), 3) for h in c.model.history]
            print(f"    fit() epochs {len(c.model.history)}, internal val Dice per epoch {vd}")
    ours = [c for c in contestants if isinstance(c, Ours)]
    ref = [c for c in contestants if isinstance(c, Reference)]
    if ref:
        rd = results[ref[0].name]["dice"]
        for o in ours:
            d = results[o.name]["dice"]
            print(f"RESULT {o.name}: Dice {d:.3f} vs plain loop {rd:.3f}: difference {d - rd:+.3f}")


def _tile_report(contestants: list, images, slices=None) -> None:
    """Tile 256 vs tile 512 through predict_stack: label Dice and max |dp|."""
    from napari_temseg.core.training.precise_bn import tile_agreement

    for c in contestants:
        if isinstance(c, Ours):
            t0 = time.monotonic()
            r = tile_agreement(c.model, images, slices=slices)
            print(
                f"TILES {c.name} ({c.model.model_cfg.norm_layer} norm): tile 256 vs 512 label "
                f"Dice {r['label_dice']:.4f}, max |dp| {r['max_dp']:.3f} "
                f"({time.monotonic() - t0:.0f} s)",
                flush=True,
            )


# --------------------------------------------------------------------------- isbi / emps
def bench_isbi(args) -> None:
    vol, lab = _realdata.isbi2012()
    n_train = 15
    test = list(range(n_train, vol.shape[0]))
    print(
        f"isbi2012: train sections 0-{n_train - 1}, test {test[0]}-{test[-1]}, "
        f"budget {args.seconds}s "
        f"each, slice {args.slice}s | {machine()}",
        flush=True,
    )
    contestants = _contestants(
        args, vol[:n_train], lab[:n_train], list(vol[:n_train]), list(lab[:n_train]), args.context
    )
    race(contestants, args.seconds, args.slice)
    truths = [lab[z] for z in test]
    # prediction sees the whole image stack (context slices 14 and 16.. are images, not labels)
    results = {c.name: _dice_report(c.predict(vol, test), truths) for c in contestants}
    _report(
        contestants,
        results,
        all_foreground_dice(truths),
        "isbi2012 membrane Dice on sections 15-19",
    )
    if args.tiles:
        _tile_report(contestants, vol, slices=test)
    print(f"done | {machine()}")


def bench_emps(args) -> None:
    train, test = _realdata.emps_split(0.2, args.train_limit, None)
    test_eval = test[: args.eval_limit] if args.eval_limit else test
    print(
        f"emps: {len(train)} training images, {len(test)} held out (by name hash), evaluating "
        f"{len(test_eval)}, budget {args.seconds}s each, slice {args.slice}s | {machine()}",
        flush=True,
    )
    images, masks = [t[1] for t in train], [t[2] for t in train]
    contestants = _contestants(args, images, masks, images, masks, 0)
    race(contestants, args.seconds, args.slice)
    truths = [t[2] for t in test_eval]
    results = {
        c.name: _dice_report([c.predict(t[1], [0])[0] for t in test_eval], truths)
        for c in contestants
    }
    _report(
        contestants,
        results,
        all_foreground_dice(truths),
        f"emps particle Dice on {len(test_eval)} held-out images",
    )
    if args.tiles:
        _tile_report(contestants, [t[1] for t in test_eval[: args.tiles]])
    print(f"done | {machine()}")


# --------------------------------------------------------------------------- throughput
def _throughput_data(args):
    if _realdata.available("isbi2012") and not args.synthetic:
        vol, lab = _realdata.isbi2012()
        return vol[:15], lab[:15], "isbi2012 sections 0-14"
    from napari_temseg.core.data.synthetic.fibsem import make_fibsem

    img, mask = make_fibsem(shape=(6, 1, 512, 512), seed=0)
    return img, mask, "synthetic FIB-SEM 6 x 512 x 512"


def _timed(fn, reps: int) -> float:
    t = time.monotonic()
    for _ in range(reps):
        fn()
    return (time.monotonic() - t) / reps


def _interleave(gen, bare_step, threads: list[int], seconds: float, chunk: int) -> dict:
    """Rotate (threads, fit | bare) every ``chunk`` steps for ``seconds``; per-step wall times.

    Fine-grained alternation makes the shared machine's load drift hit every
    configuration alike. fit() steps that end an epoch (they include validation) are
    kept apart. The prefetch queue fills while fit() is paused; that saves at most
    PREFILLED sampler calls per chunk (a few ms, see the breakdown).
    """
    import torch

    times: dict = {(t, k): [] for t in threads for k in ("fit", "bare", "fit_val")}
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        for t in threads:
            torch.set_num_threads(t)
            for _ in range(chunk):
                t0 = time.monotonic()
                p = next(gen)
                kind = "fit_val" if p.extra.get("epoch_record") else "fit"
                times[(t, kind)].append(time.monotonic() - t0)
            for _ in range(chunk):
                t0 = time.monotonic()
                bare_step()
                times[(t, "bare")].append(time.monotonic() - t0)
    return times


def bench_throughput(args) -> None:
    import torch

    from napari_temseg.core.config.model import DEFAULT_MODEL, InputSpec
    from napari_temseg.core.config.train import TrainConfig, learning_rate
    from napari_temseg.core.data.volume import as_mask, as_volume, compute_norm
    from napari_temseg.core.nets.build import build_model
    from napari_temseg.core.training.augment.augmenter import Augmenter
    from napari_temseg.core.training.loop import fit
    from napari_temseg.core.training.objectives import loss_fn as make_loss
    from napari_temseg.core.training.objectives import validate
    from napari_temseg.core.training.sampling import PatchSampler, split_regions, validation_patches

    img, mask, what = _throughput_data(args)
    threads = args.thread_list or [torch.get_num_threads()]
    print(
        f"throughput on {what}: batch {args.batch}, patch {args.patch}, augment '{args.augment}', "
        f"default model {DEFAULT_MODEL.arch}, torch threads {threads} | {machine()}",
        flush=True,
    )
    cfg = TrainConfig(
        patch=args.patch,
        batch=args.batch,
        epochs=10**6,
        seconds=None,
        augment=args.augment,
        device="cpu",
    )
    gen = fit(img, mask, train_cfg=cfg)
    # the bare loop gets fit()'s precision policy (bf16 autocast + channels_last on CPUs with
    # native bf16), so the ratio measures pipeline overhead; --bare-fp32 compares with fp32
    from napari_temseg.core.device import amp_dtype, autocast, channels_last_pays

    dev, amp = torch.device("cpu"), (False if args.bare_fp32 else "auto")
    fast = channels_last_pays(dev, DEFAULT_MODEL.resolved().norm_layer, amp)
    bf16 = amp_dtype(dev, amp) is not None
    norm = DEFAULT_MODEL.resolved().norm_layer
    print(
        f"  bare loop: {'bf16 autocast' if bf16 else 'fp32'}, {norm} norm, "
        f"{'channels_last' if fast else 'NCHW'}",
        flush=True,
    )
    net = build_model(dataclasses.replace(DEFAULT_MODEL, in_channels=1))
    if fast:
        net = net.to(memory_format=torch.channels_last)
    lr = learning_rate(cfg, binary=True)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    loss_fn = make_loss(cfg.loss)
    vol = as_volume(img)
    mvol = as_mask(mask, vol)
    regions, _ = split_regions([(0, z) for z in range(vol.shape[0])], [vol.shape[2:]], 0.0, 0)
    lo, hi = compute_norm([vol])
    sampler = PatchSampler(
        [vol], [mvol], regions, InputSpec(norm_lo=lo, norm_hi=hi), args.patch, False, 0.5, 1
    )
    batches = [[torch.from_numpy(a) for a in sampler.sample(args.batch)] for _ in range(4)]
    count = [0]

    def bare_step():  # pre-made tensors, rotated so the net never sees one batch over and over
        x, y, w = batches[count[0] % len(batches)]
        count[0] += 1
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(dev, amp):
            logits = net(x)
        loss = loss_fn(logits.float(), y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = time.monotonic()
    for _ in range(2):
        next(gen)  # fit() setup + warm-up
        bare_step()
    print(f"  setup + 2 warm-up steps each: {time.monotonic() - t:.1f}s", flush=True)
    times = _interleave(gen, bare_step, threads, args.seconds, args.chunk)
    gen.close()
    torch.set_num_threads(threads[0])
    aug = Augmenter(args.augment, seed=0)
    t_sample = _timed(lambda: sampler.sample(args.batch), args.reps)
    t_aug = _timed(lambda: aug(*batches[0]), args.reps)
    t_step = _timed(bare_step, args.reps)
    val = validation_patches(sampler)
    t_val = _timed(lambda: validate(net, val, torch.device("cpu"), False), 1)
    print(
        f"  breakdown at {threads[0]} thread(s), each alone, mean of {args.reps}: "
        f"sample {t_sample * 1e3:.0f} ms, "
        f"augment {t_aug * 1e3:.0f} ms, bare step {t_step * 1e3:.0f} ms; "
        f"validation ({len(val[0])} patches) "
        f"{t_val:.2f}s once per epoch of {cfg.steps_per_epoch} steps"
    )
    for t in threads:
        f, b, fv = (np.array(times[(t, k)]) for k in ("fit", "bare", "fit_val"))
        fit_ms, bare_ms = 1e3 * f.mean(), 1e3 * b.mean()
        with_val = 1e3 / (fit_ms + 1e3 * t_val / cfg.steps_per_epoch)
        print(
            f"RESULT threads={t}: fit() {1e3 / fit_ms:.3f} steps/s "
            f"({len(f)} steps, mean {fit_ms:.0f} ms, "
            f"median {1e3 * np.median(f):.0f}) vs bare loop {1e3 / bare_ms:.3f} steps/s "
            f"({len(b)} steps, mean "
            f"{bare_ms:.0f} ms, median {1e3 * np.median(b):.0f}): ratio {bare_ms / fit_ms:.2f} "
            f"(median {np.median(b) / np.median(f):.2f}; "
            f"{with_val * bare_ms / 1e3:.2f} with validation "
            f"amortised; {len(fv)} validation steps not counted); goal >= 0.9"
        )
    print(f"done | {machine()}")


# --------------------------------------------------------------------------- main
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput", help="fit() steps/s vs a bare training loop")
    t.add_argument("--seconds", type=float, default=150.0, help="total interleaved measuring time")
    t.add_argument("--chunk", type=int, default=2, help="steps per turn before switching")
    t.add_argument(
        "--thread-list", type=int, nargs="+", help="torch thread counts to interleave, e.g. 2 1"
    )
    t.add_argument("--reps", type=int, default=3, help="repetitions per breakdown timing")
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--patch", type=int, default=256)
    t.add_argument("--augment", default="default")
    t.add_argument(
        "--bare-fp32", action="store_true", help="bare loop in fp32 (not fit()'s policy)"
    )
    t.add_argument(
        "--synthetic", action="store_true", help="use a synthetic stack instead of isbi2012"
    )
    for name, secs in (("isbi", 180.0), ("emps", 90.0)):
        s = sub.add_parser(
            name, help=f"{name} Dice: fit() vs a plain smp U-Net loop, same time budget"
        )
        s.add_argument("--seconds", type=float, default=secs, help="training budget per contestant")
        s.add_argument("--slice", type=float, default=30.0, help="round-robin time slice (seconds)")
        s.add_argument("--variant", action="append", help="extra fit() contestant name:key=val,...")
        s.add_argument("--no-reference", action="store_true", help="skip the plain smp loop")
        s.add_argument("--all", help="key=val,... applied to every fit() contestant (e.g. seed=1)")
        s.add_argument(
            "--tiles",
            type=int,
            default=0,
            help="also predict held-out images with tile 256 and 512 and compare the labels "
            "(emps: the first N; isbi: any N > 0 = sections 15-19)",
        )
        if name == "isbi":
            s.add_argument(
                "--context", type=int, default=1, help="2.5D context of fit() (default 1)"
            )
        else:
            s.add_argument(
                "--eval-limit", type=int, default=30, help="held-out images evaluated (0 = all)"
            )
            s.add_argument(
                "--train-limit", type=int, default=None, help="use only N training images"
            )
    args = ap.parse_args(argv)
    torch_threads(args.threads)
    {"throughput": bench_throughput, "isbi": bench_isbi, "emps": bench_emps}[args.cmd](args)


if __name__ == "__main__":
    main()
