"""The network around a bioimage.io package's weights (core/interop/bioimageio/load.py): the
package's processing steps as torch functions, tiles padded to sizes the package takes,
its axis order, and its output turned into the logits the predictor expects.

Tensors are ``(b, c, y, x)`` here. Statistics of per-sample and dataset processing steps
(zero_mean_unit_variance, scale_range, clip percentiles) are taken per tile: the predictor's
tile is the "sample" (a ``batch`` axis in a step's axes is ignored). Percentiles are numpy's
"linear" ones, as bioimageio.core computes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import InputError, ModelFileError

EPS = 1e-6  # probabilities are clamped to [EPS, 1 - EPS] before logit / log
CANON = "bcyx"  # PackageNet's tensors: (batch, channel, y, x)
ONLY_PREDICTS = (
    "'{}' is an imported bioimage.io package: it can only predict, not be saved, exported "
    "or trained further; use the package itself (or train a napari-temseg model)"
)
ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
               "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
               "tensor(int8)": np.int8, "tensor(int16)": np.int16,
               "tensor(uint16)": np.uint16, "tensor(int32)": np.int32,
               "tensor(int64)": np.int64}  # fmt: skip


def first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


class OnnxRunner:
    """ONNX weights on the CPU (onnxruntime), called with and returning torch tensors."""

    def __init__(self, data: bytes, name: str):
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError(
                f"'{name}' has ONNX weights: install onnxruntime (pip install onnxruntime)"
            ) from None
        import torch

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = torch.get_num_threads(), 1
        try:
            self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelFileError(
                f"'{name}': onnxruntime cannot run its ONNX weights ({first_line(e)}); "
                "update onnxruntime (pip install -U onnxruntime)"
            ) from None
        first = self.session.get_inputs()[0]
        self.input, self.dtype = first.name, ONNX_DTYPES.get(first.type, np.float32)

    def __call__(self, x: Any) -> Any:
        import torch

        a = np.ascontiguousarray(x.detach().float().cpu().numpy(), dtype=self.dtype)
        y = self.session.run(None, {self.input: a})[0]
        return torch.from_numpy(np.asarray(y)).to(x.device)


def _over(x: Any, rdims: tuple, fn: Any) -> list:
    """``fn`` of x's values over the dims ``rdims`` (flattened into the last axis), each
    result shaped to broadcast against x."""
    keep = [d for d in range(x.ndim) if d not in rdims]
    v = x.float().permute(*keep, *rdims).reshape(*[x.shape[d] for d in keep], -1)
    shape = [1 if d in rdims else x.shape[d] for d in range(x.ndim)]
    return [r.reshape(shape) for r in fn(v)]


def _percentiles(v: Any, qs: tuple) -> list:
    """numpy's "linear" percentiles along the last axis (any size, unlike torch.quantile)."""
    s, n = v.sort(dim=-1).values, v.shape[-1]
    out = []
    for q in qs:
        pos = q / 100 * (n - 1)
        lo, f = int(math.floor(pos)), pos - math.floor(pos)
        out.append(s[..., lo] + (s[..., min(lo + 1, n - 1)] - s[..., lo]) * f)
    return out


def _reduce_dims(kw: Any, dims: dict, what: str) -> tuple:
    """The dims a statistic is taken over: the given axes without batch (per tile), all
    non-batch axes when none are given (dataset statistics: per tile too)."""
    axes = getattr(kw, "axes", None)
    if axes is None:
        return (1, 2, 3)
    bad = [str(a) for a in axes if str(a) not in dims]
    if bad:
        raise InputError(f"{what}: axes {bad} are not axes of the tensor; fix the rdf.yaml")
    return tuple(sorted({dims[str(a)] for a in axes} - {0})) or (1, 2, 3)


def _along(kw: Any, key: str, dims: dict, what: str) -> Any:
    """A kwarg as a float, or (values along the channel axis) a (1, C, 1, 1) array."""
    v = getattr(kw, key)
    if not isinstance(v, (list, tuple)):
        return float(v)
    axis = str(getattr(kw, "axis", "channel"))
    if dims.get(axis) != 1:
        raise InputError(f"{what}: values along axis '{axis}' (only the channel axis is run)")
    return np.asarray(v, np.float32).reshape(1, -1, 1, 1)


def _on(v: Any, x: Any) -> Any:
    """A float or array as a tensor on x's device."""
    return v if isinstance(v, float) else x.new_tensor(v)


def _elementwise(kind: str, kw: Any, dims: dict, what: str) -> Any:
    """The steps without statistics (None for the others)."""
    import torch

    if kind == "ensure_dtype":
        dtype = getattr(torch, kw.dtype)
        return lambda x: x.to(dtype)
    if kind == "scale_linear":
        g, o = _along(kw, "gain", dims, what), _along(kw, "offset", dims, what)
        return lambda x: x * _on(g, x) + _on(o, x)
    if kind == "fixed_zero_mean_unit_variance":
        m, s = _along(kw, "mean", dims, what), _along(kw, "std", dims, what)
        return lambda x: (x - _on(m, x)) / (_on(s, x) + EPS)
    if kind == "binarize":
        t = _along(kw, "threshold", dims, what)
        return lambda x: (x > _on(t, x)).float()
    if kind == "sigmoid":
        return torch.sigmoid
    if kind == "softmax" and dims.get(str(kw.axis)) == 1:
        return lambda x: torch.softmax(x, 1)
    return None


def step_function(step: Any, dims: dict, what: str, own: str) -> Any:
    """A preprocessing / postprocessing step as a function of a (b, c, y, x) tensor
    (``dims``: {the tensor's axis id: index}; ``own``: the tensor's id)."""
    kind, kw = step.id, getattr(step, "kwargs", None)
    ref = getattr(kw, "reference_tensor", None)
    if ref is not None and str(ref) != own:
        raise InputError(
            f"{what}: {kind} refers to tensor '{ref}', which napari-temseg does not run here; "
            "use bioimageio.core"
        )
    f = _elementwise(kind, kw, dims, what)
    if f is not None:
        return f
    r = _reduce_dims(kw, dims, what)
    if kind == "zero_mean_unit_variance":

        def zmuv(x: Any) -> Any:
            m, s = _over(x, r, lambda v: (v.mean(-1), v.std(-1, correction=0)))
            return (x - m) / (s + kw.eps)

        return zmuv
    if kind == "scale_range":

        def scale_range(x: Any) -> Any:
            lo, hi = _over(x, r, lambda v: _percentiles(v, (kw.min_percentile, kw.max_percentile)))
            return (x - lo) / (hi - lo + kw.eps)

        return scale_range
    if kind == "clip":
        return _clip(kw, r)
    raise InputError(f"{what}: the step '{kind}' is not run by napari-temseg; use bioimageio.core")


def _clip(kw: Any, r: tuple) -> Any:
    import torch

    def clip(x: Any) -> Any:
        qs = [q for q in (kw.min_percentile, kw.max_percentile) if q is not None]
        got = iter(_over(x, r, lambda v: _percentiles(v, qs)) if qs else ())
        lo = next(got) if kw.min_percentile is not None else kw.min
        hi = next(got) if kw.max_percentile is not None else kw.max
        lo = x.new_tensor(lo) if isinstance(lo, float) else lo
        hi = x.new_tensor(hi) if isinstance(hi, float) else hi
        x = x if lo is None else torch.maximum(x, lo)
        return x if hi is None else torch.minimum(x, hi)

    return clip


def _pad(x: Any, dh: int, dw: int) -> Any:
    from torch.nn import functional as F

    mode = "reflect" if dh < x.shape[-2] and dw < x.shape[-1] else "replicate"
    return F.pad(x, (0, dw, 0, dh), mode=mode)


def _to_layout(x: Any, order: str) -> Any:
    """(b, c, y, x) -> the package's axis order (absent batch / channel axes dropped)."""
    for i in (1, 0):
        if CANON[i] not in order:
            x = x.squeeze(i)
    have = [a for a in CANON if a in order]
    return x.permute(*[have.index(a) for a in order])


def _from_layout(y: Any, order: str) -> Any:
    have = [a for a in CANON if a in order]
    y = y.permute(*[order.index(a) for a in have])
    for i in (0, 1):
        if CANON[i] not in order:
            y = y.unsqueeze(i)
    return y


@dataclass
class Plan:
    """What PackageNet does around the package's weights (tensors are (b, c, y, x))."""

    name: str
    order_in: str  # the input's axes as letters of CANON, in the package's order
    order_out: str
    fit: tuple  # ((min, step) of y, of x); step 0: a fixed size
    pre: list  # preprocessing functions
    post: list  # postprocessing functions
    k: int  # output channels
    logits: bool  # the postprocessed output is logits (else probabilities)
    loop: bool  # no batch axis or a batch of 1: one tile at a time

    def size(self, n: int, i: int) -> int:
        """The smallest size >= n that the package takes along y (i = 0) or x (1)."""
        lo, step = self.fit[i]
        if step == 0 and n > lo:
            raise InputError(
                f"'{self.name}' takes tiles of at most {lo} x {lo} px: set the tile size "
                f"to {lo} or less (tile, --tile)"
            )
        return lo + (max(0, math.ceil((n - lo) / step)) * step if step else 0)

    def __call__(self, x: Any, runner: Any) -> Any:
        import torch

        h, w = x.shape[-2:]
        H, W = self.size(h, 0), self.size(w, 1)
        x = _pad(x.float(), H - h, W - w) if (h, w) != (H, W) else x.float()
        for f in self.pre:
            x = f(x)
        parts = [x[i : i + 1] for i in range(len(x))] if self.loop else [x]
        y = torch.cat([self._run(p, runner) for p in parts])
        if tuple(y.shape[1:]) != (self.k, H, W):
            raise InputError(
                f"'{self.name}' returned {tuple(y.shape[1:])} for a {H} x {W} tile, "
                f"expected ({self.k}, {H}, {W}): its rdf.yaml does not match its weights"
            )
        y = y[..., :h, :w]
        for f in self.post:
            y = f(y)
        return self.to_logits(y)

    def _run(self, x: Any, runner: Any) -> Any:
        y = runner(_to_layout(x, self.order_in))
        y = y[0] if isinstance(y, (tuple, list)) else y
        if y.ndim != len(self.order_out):
            raise InputError(f"'{self.name}' returned a {y.ndim}D output, not its rdf.yaml's")
        return _from_layout(y.float(), self.order_out)

    def to_logits(self, y: Any) -> Any:
        """What the predictor's sigmoid (one channel) / softmax (K) turns into ``y``'s
        probabilities; two channels (background, foreground) become one."""
        import torch

        if not self.logits:
            p = y.clamp(EPS, 1 - EPS)
            y = torch.log(p) - torch.log1p(-p) if self.k == 1 else torch.log(p)
        return y[:, 1:] - y[:, :1] if self.k == 2 else y


def package_net(runner: Any, plan: Plan) -> Any:
    import torch

    class PackageNet(torch.nn.Module):
        """A package's weights: (N, C, H, W) raw intensities -> logits; predicts only."""

        def __init__(self) -> None:
            super().__init__()
            self.runner, self.plan = runner, plan  # TorchScript: a submodule (moves with .to)

        def forward(self, x: Any) -> Any:
            return self.plan(x, self.runner)

        def train(self, mode: bool = True) -> Any:
            if mode:
                raise InputError(ONLY_PREDICTS.format(plan.name))
            return super().train(False)

        def __deepcopy__(self, memo: dict) -> Any:  # export and resumed training copy it
            raise InputError(ONLY_PREDICTS.format(plan.name))

    return PackageNet().eval()


__all__ = ["Plan", "OnnxRunner", "step_function", "package_net", "first_line"]
