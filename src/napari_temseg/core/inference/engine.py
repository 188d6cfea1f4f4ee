"""The compute side of tiled prediction: batched forward passes (with test-time
augmentation) and the blended per-slice accumulators (see ``predict.py`` for the pipeline).

``forward`` turns a batch of tiles into probabilities - sigmoid for binary models, softmax
for K classes - averaged over the 8 flips/rotations with TTA. ``Engine`` adds each tile's
probabilities times the blend weights into a float32 accumulator of its slice (on the
device), divides a finished slice by the summed weights and hands it to the writer thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..device import autocast
from ..errors import InputError
from ..threads import Worker
from .postprocess import SliceWriter


def forward(
    net: Any, x: Any, tta: bool, want_var: bool, device: Any, amp: Any, k: int = 2
) -> tuple[Any, Any]:
    """Probabilities of a batch - (N, H, W) binary, (N, K, H, W) for K classes - averaged
    over 8 flips/rotations with ``tta``; the variance of the views (N, H, W; K classes: the
    mean over the classes) with ``want_var``.

    CPU: numpy results (``scipy.special``; single-threaded elementwise work avoids
    OpenMP start-up costs on a busy machine); other devices: tensors on the device.
    """
    import torch

    if device.type == "cpu":
        from scipy.special import expit, softmax

        def prob(lg):
            a = lg.float().numpy()
            return expit(a[:, 0]) if k == 2 else softmax(a, axis=1)
    else:

        def prob(lg):
            lg = lg.float()
            return torch.sigmoid(lg[:, 0]) if k == 2 else torch.softmax(lg, 1)

    with autocast(device, amp):
        if not tta:
            return prob(net(x)), None
        total, sq = 0.0, 0.0
        for r in range(4):
            for flip in (False, True):
                v = torch.rot90(x, r, (2, 3))
                v = v.flip(3) if flip else v
                lg = net(v)
                lg = lg.flip(3) if flip else lg
                p = prob(torch.rot90(lg, -r, (2, 3)))
                total, sq = total + p, (sq + p * p) if want_var else sq
    mean = total / 8.0
    if not want_var:
        return mean, None
    var = sq / 8.0 - mean * mean
    if k != 2:
        var = var.mean(1)
    return mean, (var.clip(0.0) if isinstance(var, np.ndarray) else var.clamp_min(0.0))


class Engine:
    """Accumulates blended tile probabilities slice by slice on the device.

    On the CPU the accumulators are numpy arrays: many small torch ops each start an
    OpenMP parallel region, which costs milliseconds on a busy machine.
    """

    def __init__(self, net, plan: Any, device, opts: dict, outputs: SliceWriter):
        """``plan``: the slice's tile plan (``predict._Plan``); ``opts``: tta, var, amp, cl, k."""
        import torch

        self.net, self.plan, self.device = net, plan, device
        self.tta, self.want_var, self.amp, self.cl, self.k = (
            opts["tta"],
            opts["var"],
            opts["amp"],
            opts["cl"],
            opts["k"],
        )
        self.cpu = device.type == "cpu"
        self.w, self.wsum = plan.weights, plan.wsum
        if not self.cpu:
            with torch.inference_mode():
                self.w, self.wsum = (
                    torch.from_numpy(a).to(device) for a in (plan.weights, plan.wsum)
                )
        self.acc: dict[int, list] = {}
        self.count: dict[int, int] = {}
        self.done: list[int] = []
        self.fits: int | None = None  # the tile batch that fits, once one did not
        self.notice: str | None = None
        self.writer = Worker(consumer=outputs.write, depth=1)

    def _zeros(self, classes: bool) -> Any:
        import torch

        shape = (self.plan.PY, self.plan.PX)
        if classes and self.k != 2:
            shape = (self.k, *shape)
        if self.cpu:
            return np.zeros(shape, np.float32)
        return torch.zeros(shape, dtype=torch.float32, device=self.device)

    def run_batch(self, buf: Any, meta: list) -> None:
        """Add a batch of tiles into their slices; out of memory: the tile batch is halved
        once (``notice`` says so) and the rest of the run goes in halves, then one line."""
        import torch

        with torch.inference_mode():
            x = (buf if isinstance(buf, torch.Tensor) else torch.from_numpy(buf)).to(
                self.device, non_blocking=True
            )
            if self.cl:
                x = x.contiguous(memory_format=torch.channels_last)
            i = 0
            while i < len(meta):
                j = min(len(meta), i + (self.fits or len(meta)))
                out = self._forward(x[i:j])
                if out is not None:
                    self._add(*out, meta[i:j])
                    i = j

    def _forward(self, x: Any) -> tuple | None:
        """(prob, var) of the tiles ``x``, or None after halving the batch (run it again)."""
        from ..device import free_cached_memory, is_out_of_memory

        try:
            return forward(self.net, x, self.tta, self.want_var, self.device, self.amp, self.k)
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
        # out of the except block: the failed pass's tensors are released
        free_cached_memory(self.device)
        n, ty, tx = len(x), self.plan.ty, self.plan.tx
        if self.fits is not None or n < 2:
            raise InputError(
                f"out of memory running {n} tiles of {ty} x {tx} px on {self.device}"
                + (" (the batch halved once already)" if self.fits else "")
                + ": lower the batch (--batch) or the tile size (--tile)"
            )
        self.fits = n // 2
        self.notice = (
            f"batch {n} does not fit in the memory of {self.device}: predicting with "
            f"batch {self.fits}, which fits (set batch {self.fits} to start there)"
        )
        return None

    def take_notice(self) -> str | None:
        """The notice of a halved batch, once (a warning on every record would flood)."""
        notice, self.notice = self.notice, None
        return notice

    def _add(self, prob: Any, var: Any, meta: list) -> None:
        p, ty, tx = self.plan, self.plan.ty, self.plan.tx
        for i, (z, y0, x0) in enumerate(meta):
            if z not in self.acc:
                self.acc[z] = [self._zeros(i == 0) for i in range(2 if self.want_var else 1)]
                self.count[z] = 0
            acc = self.acc[z]
            acc[0][..., y0 : y0 + ty, x0 : x0 + tx] += prob[i] * self.w
            if var is not None:
                acc[1][y0 : y0 + ty, x0 : x0 + tx] += var[i] * self.w
            self.count[z] += 1
            if self.count[z] == p.n:
                self._finish(z)

    def _finish(self, z: int) -> None:
        acc = self.acc.pop(z)
        del self.count[z]
        Y, X = self.plan.Y, self.plan.X
        for a in acc:
            a /= self.wsum  # in place: no second slice-sized buffer
        out = [a[..., :Y, :X] for a in acc]
        out = [o if self.cpu else o.cpu().numpy() for o in out]
        self.writer.submit(z, out[0], out[1] if len(out) > 1 else None)
        self.done.append(z)


__all__ = ["Engine", "forward"]
