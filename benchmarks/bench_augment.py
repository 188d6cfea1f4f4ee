"""Augmentation throughput: our batched Augmenter vs albumentations and kornia.

Same ops, same batch (``--batch`` x 3 channels x ``--size``^2 float32 image + target +
weight mask), every op applied to every sample (p = 1) except flips / rot90 (p = 0.5):

* rotation +-25 deg, scale 0.85-1.25, elastic distortion, flips + 90 deg rotations,
  brightness / contrast, Gaussian noise.

Contestants, timed in interleaved rounds (median of the rounds is printed, so a
changing machine load hits all of them alike):

1. ours, CPU, in the main process (``torch.set_num_threads(--threads)``);
2. ours, CUDA (only when a GPU is present);
3. albumentations 2.0.x (MIT) per sample on CPU workers: a torch ``DataLoader`` with
   ``--workers`` processes (1 OpenCV thread each) collating batches of ``--batch``;
4. albumentations in the main process (``num_workers=0``), for reference.

Then the geometric part alone (rotation + scale + elastic, image bilinear, masks
nearest): our single fused ``grid_sample`` vs kornia's ``AugmentationSequential``
(``RandomAffine`` + ``RandomElasticTransform``: two resamplings) on the same batch,
and the affine part alone (our grid vs ``RandomAffine``). Last, the cost of each preset
on fit()'s default training batch (4 x 1 x 256^2).

Note the elastic models differ: ours / Augmentor = random displacements on a coarse
grid, bicubic-interpolated; albumentations / kornia = per-pixel noise smoothed by a
Gaussian (Simard 2003). Both give smooth random warps; the cost differs.

Run from the repository root::

    python benchmarks/bench_augment.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

ROT, SCALE = 25.0, (0.85, 1.25)


def _data(n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, size, size), dtype=np.float32)
    y = (rng.random((n, 1, size, size)) > 0.5).astype(np.float32)
    return x, y, np.ones_like(y)


def ours(**kw):
    from napari_temseg.core.training.augment.augmenter import Augmenter

    full = dict(
        p_flip=0.5,
        p_rot90=0.5,
        p_rotate=1.0,
        rotate_deg=ROT,
        p_zoom=1.0,
        zoom=SCALE,
        p_elastic=1.0,
        elastic_grid=6,
        elastic_magnitude=4.0,
        p_brightness=1.0,
        brightness=0.1,
        p_contrast=1.0,
        contrast=(0.8, 1.25),
        p_noise=1.0,
        noise_std=0.03,
    )
    full.update(kw)
    return Augmenter("none", seed=0, **full)


def _album_pipeline():
    import albumentations as A
    import cv2

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Affine(
                rotate=(-ROT, ROT),
                scale=SCALE,
                p=1.0,
                border_mode=cv2.BORDER_REFLECT_101,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
            ),
            A.ElasticTransform(
                alpha=30.0,
                sigma=6.0,
                p=1.0,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.2, p=1.0),
            A.GaussNoise(std_range=(0.0, 0.03), p=1.0),
        ]
    )


class AlbumDataset:
    """Per-sample albumentations on HWC arrays -> CHW tensors (what a DataLoader would do)."""

    def __init__(self, x, y, w):
        self.x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        self.y, self.w = y[:, 0].astype(np.uint8), w[:, 0].astype(np.uint8)
        self.tf = None

    def __len__(self):
        return 10**9

    def __getitem__(self, i):
        import torch

        if self.tf is None:
            self.tf = _album_pipeline()
        k = i % len(self.x)
        out = self.tf(image=self.x[k], masks=[self.y[k], self.w[k]])
        img = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))
        y, w = (torch.from_numpy(np.ascontiguousarray(m))[None].float() for m in out["masks"])
        return img, y, w


def _worker_init(_):
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def album_loader(x, y, w, batch: int, workers: int):
    import torch

    return torch.utils.data.DataLoader(
        AlbumDataset(x, y, w),
        batch_size=batch,
        num_workers=workers,
        persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers else None,
    )


def rate_loader(loader, n_batches: int, batch: int) -> float:
    """Samples/s over ``n_batches`` from a fresh iterator (workers idle afterwards)."""
    it = iter(loader)
    t = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    dt = time.perf_counter() - t
    del it
    return n_batches * batch / dt


def rate_ours(aug, tensors, n_batches: int) -> float:
    import torch

    x, y, w = tensors
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    aug(x, y, w)
    sync()
    t = time.perf_counter()
    for _ in range(n_batches):
        aug(x, y, w)
    sync()
    return n_batches * x.shape[0] / (time.perf_counter() - t)


def kornia_geometry(size: int, affine_only: bool = False):
    import kornia.augmentation as K

    ops = [K.RandomAffine(degrees=ROT, scale=SCALE, p=1.0, padding_mode="reflection")]
    if not affine_only:
        ops.append(K.RandomElasticTransform(p=1.0))
    seq = K.AugmentationSequential(*ops, data_keys=["input", "mask", "mask"])
    return lambda x, y, w: seq(x, y, w)


def _median_rates(contestants: dict, rounds: int) -> dict:
    rates = {k: [] for k in contestants}
    for _ in range(rounds):
        for name, fn in contestants.items():
            rates[name].append(fn())
    return {k: statistics.median(v) for k, v in rates.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batches", type=int, default=4, help="batches per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import albumentations
    import kornia
    import torch

    torch.set_num_threads(args.threads)
    x, y, w = _data(args.batch, args.size)
    cpu = tuple(torch.from_numpy(a) for a in (x, y, w))
    print(
        f"# {platform.machine()}, torch {torch.__version__}, albumentations "
        f"{albumentations.__version__}, kornia {kornia.__version__}, {args.threads} threads, "
        f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}; batch {args.batch} x 3 x "
        f"{args.size}^2, median of {args.rounds} rounds x {args.batches} batches"
    )
    pool = album_loader(x, y, w, args.batch, args.workers)
    single = album_loader(x, y, w, args.batch, 0)
    nb, b = args.batches, args.batch
    full = {
        "ours CPU": lambda: rate_ours(ours(), cpu, nb),
        f"albumentations, DataLoader {args.workers} workers": lambda: rate_loader(pool, nb, b),
        "albumentations, main process": lambda: rate_loader(single, nb, b),
    }
    if torch.cuda.is_available():
        gpu = tuple(a.cuda() for a in cpu)
        full["ours CUDA"] = lambda: rate_ours(ours(), gpu, 4 * nb)
    _report("full pipeline", _median_rates(full, args.rounds))
    geo = dict(p_flip=0.0, p_rot90=0.0, p_brightness=0.0, p_contrast=0.0, p_noise=0.0)
    aff = dict(geo, p_elastic=0.0)
    geometric = {
        "ours: rotate+scale+elastic (1 grid_sample)": lambda: rate_ours(ours(**geo), cpu, nb),
        "kornia: RandomAffine+RandomElastic": lambda: rate_ours(
            kornia_geometry(args.size), cpu, nb
        ),
        "ours: rotate+scale": lambda: rate_ours(ours(**aff), cpu, nb),
        "kornia: RandomAffine": lambda: rate_ours(kornia_geometry(args.size, True), cpu, nb),
    }
    _report("geometric part, CPU", _median_rates(geometric, args.rounds))
    _presets_on_train_batch(args.rounds)


def _presets_on_train_batch(rounds: int) -> None:
    """Cost of each preset on fit()'s default batch (4 x 1 x 256^2), ms per batch."""
    import torch

    from napari_temseg.core.config.choices import AUGMENT_PRESETS
    from napari_temseg.core.training.augment.augmenter import Augmenter

    batch = tuple(torch.from_numpy(a[:, :1]) for a in _data(4, 256, seed=1))
    print("\npresets on a training batch (4 x 1 x 256^2, CPU), ms per batch:")
    for name in AUGMENT_PRESETS[1:]:
        aug = Augmenter(name, seed=0)
        rate = statistics.median(rate_ours(aug, batch, 10) for _ in range(rounds))
        print(f"  {name:10s} {4000 / rate:7.1f} ms")


def _report(title: str, rates: dict) -> None:
    names = list(rates)
    ref = rates[names[1]]
    print(f"\n{title}:")
    for n in names:
        print(f"  {n:48s} {rates[n]:9.1f} samples/s   ratio vs '{names[1]}': {rates[n] / ref:.2f}")


if __name__ == "__main__":
    main()
