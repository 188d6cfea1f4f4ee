"""Where to paint next: regions ranked by the model's own uncertainty, spread out.

Candidates are the squares of a grid of ``size`` px over every slice (the last row and
column end at the image border), minus what is annotated already: with a dense mask
every painted slice (it is fully labelled for training), with sparse scribbles every
square whose painted fraction reaches ``painted``. At most ``max_regions`` of them,
drawn at random, are scored: each square is predicted in a window with ``margin`` px of
context around it (kept inside the image), 32 windows per run of the normal predictor
(same normalisation, 2.5D context, device, precision, batching), and scored by the mean
uncertainty of its pixels:

* ``entropy``: ``-sum_k p_k log p_k / log K`` of the predicted class probabilities
  (binary: of p and 1 - p), 0 = certain, 1 = uniform; one forward pass per square;
* ``tta-variance``: the variance of the 8 test-time views (flips / rotations), averaged
  over the classes and divided by its maximum 0.25; 8 passes per square.

The cost is ``max_regions`` windows of ``(size + 2 margin)^2`` pixels (256 x 192^2 = 9.4
Mpix with the defaults: a few seconds on a CPU, whatever the stack's size).

Diversity: regions are chosen greedily; after each choice every remaining score is
multiplied by ``1 - exp(-d^2 / (2 (diversity * size)^2))``, ``d`` the distance between
the centres in pixels with one slice counting ``z_distance`` px - so the suggestions are
not five neighbours of one spot. ``diversity=0`` ranks by uncertainty alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.suggest import SuggestConfig
from ..data.volume import Volume, as_mask, as_volume, context_indices, slice_range
from ..errors import InputError
from ..progress import Progress, StopToken, run


@dataclass(frozen=True)
class Region:
    """A suggested square: slice ``z``, top-left ``(y, x)``, its size and score."""

    rank: int
    z: int
    y: int
    x: int
    height: int
    width: int
    score: float

    @property
    def center(self) -> tuple[float, float, float]:
        return (float(self.z), self.y + self.height / 2, self.x + self.width / 2)

    def corners(self) -> np.ndarray:
        """(4, 3) corners (z, y, x) of the rectangle, as a napari Shapes rectangle."""
        y0, x0, y1, x1 = self.y, self.x, self.y + self.height, self.x + self.width
        return np.array([[self.z, y0, x0], [self.z, y0, x1], [self.z, y1, x1], [self.z, y1, x0]])


@dataclass
class SuggestResult:
    """The ranked regions, what was scored and what it cost."""

    regions: list[Region] = field(default_factory=list)
    candidates: int = 0  # unannotated squares
    scored: int = 0
    seconds: float = 0.0
    mpix: float = 0.0  # pixels predicted (millions)
    score_map: Any = None  # (Z, rows, cols) float32 scores on the grid, NaN = not scored
    starts: tuple = ((), ())  # the grid: top edges, left edges
    stopped: bool = False

    def table(self) -> list[dict]:
        return [dataclasses.asdict(r) for r in self.regions]


def grid_starts(n: int, size: int) -> list[int]:
    """Top/left edges of squares of ``size`` covering ``0..n``; the last one ends at ``n``."""
    if n <= size:
        return [0]
    starts = list(range(0, n - size + 1, size))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


def pixel_uncertainty(prob: np.ndarray, k: int) -> np.ndarray:
    """Normalised entropy (0..1) of binary ``(Y, X)`` or K-class ``(K, Y, X)`` probabilities."""
    p = np.clip(np.asarray(prob, np.float32), 1e-6, 1.0)
    if k == 2:
        q = np.clip(1.0 - p, 1e-6, 1.0)
        return -(p * np.log(p) + q * np.log(q)) / np.log(2.0)
    return -(p * np.log(p)).sum(axis=0) / np.log(k)


def annotated_cells(
    mask: Volume | None, depth: int, starts: tuple, size: tuple, sparse: bool, painted: float
) -> np.ndarray:
    """(Z, rows, cols) bool: squares that count as annotated (read one mask slice at a time)."""
    ys, xs = (np.asarray(s) for s in starts)
    out = np.zeros((depth, len(ys), len(xs)), bool)
    if mask is None:
        return out
    h, w = size
    for z in range(depth):
        m = np.asarray(mask.region(z)[0]) != 0
        if not sparse:
            out[z] = m.any()
            continue
        s = np.zeros((m.shape[0] + 1, m.shape[1] + 1), np.int64)  # integral image
        s[1:, 1:] = m.cumsum(0).cumsum(1)
        y0, x0 = ys[:, None], xs[None, :]
        box = s[y0 + h, x0 + w] - s[y0, x0 + w] - s[y0 + h, x0] + s[y0, x0]
        out[z] = box >= max(painted, 1e-12) * h * w
    return out


def choose(centres: np.ndarray, scores: np.ndarray, n: int, spread: float, z_px: float) -> list:
    """Greedy pick of ``n`` indices by score, each choice damping its neighbours."""
    adj = np.asarray(scores, np.float64).copy()
    adj[~np.isfinite(adj)] = -1.0
    picked: list[int] = []
    for _ in range(min(n, len(adj))):
        i = int(np.argmax(adj))
        if adj[i] < 0:
            break
        picked.append(i)
        if spread > 0:
            d = centres - centres[i]
            d2 = d[:, 1] ** 2 + d[:, 2] ** 2 + (d[:, 0] * z_px) ** 2
            adj = np.where(adj >= 0, adj * (1.0 - np.exp(-d2 / (2.0 * spread**2))), adj)
        adj[i] = -1.0
    return picked


class _Windows(Volume):
    """Equal windows of several slices as one stack, read lazily. Window ``n`` comes with
    its slice's 2.5D context: stack slices ``n*g .. n*g + g - 1`` (g = 2k + 1) are slices
    ``z-k .. z+k`` of the image (reflected at its ends), so the predictor's context of the
    middle one is exactly the image's."""

    def __init__(self, vol: Volume, origins: list, hw: tuple, k: int):
        self.parent, self.hw = vol, hw
        self.src = [(i, y, x) for z, y, x in origins for i in context_indices(z, vol.shape[0], k)]
        self.array, self.axes, self.rgb_to_gray = vol.array, vol.axes, vol.rgb_to_gray
        self.shape = (len(self.src), vol.shape[1], *hw)
        self.dtype = vol.dtype
        self._ranges: dict[int, tuple] = {}

    def whole_slice_ranges(self) -> None:
        """intensity_norm "image": each window normalised with its whole slice's range."""
        for f, (i, _, _) in enumerate(self.src):
            self._ranges[f] = slice_range(self.parent, i)

    def region(self, z: int, ys: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
        i, y, x = self.src[z]
        return self.parent.region(i, _shift(ys, y, self.hw[0]), _shift(xs, x, self.hw[1]))


def _shift(s: slice, origin: int, n: int) -> slice:
    a, b, step = s.indices(n)
    return slice(origin + a, origin + b, step)


class _Sink:
    """Receives the probability (or uncertainty) of predicted slices from predict_stack."""

    def __init__(self, shape: tuple):
        self.shape, self.dtype, self.values = shape, np.dtype(np.float32), {}

    def __setitem__(self, z: int, v: np.ndarray) -> None:
        self.values[z] = np.asarray(v, np.float32)


def _window(start: int, size: int, margin: int, n: int) -> tuple[int, int]:
    """(origin, length) of a window around ``start .. start+size`` kept inside ``0..n``."""
    length = min(size + 2 * margin, n)
    return int(np.clip(start - margin, 0, n - length)), length


def score_regions(
    model: Any, vol: Volume, boxes: list, cfg: SuggestConfig, pcfg: Any
) -> tuple[list[float], int]:
    """Mean uncertainty of each square ``(z, y, x, h, w)`` (all of one size), predicted in
    windows with ``cfg.margin`` px of context, one batched run; and the pixels predicted."""
    from ..inference.predict import predict_stack

    spec, k = model.input_spec, model.classes.k
    win = [(_window(y, h, cfg.margin, vol.shape[2]), _window(x, w, cfg.margin, vol.shape[3]))
           for _, y, x, h, w in boxes]  # fmt: skip
    hw = (win[0][0][1], win[0][1][1])
    stack = _Windows(
        vol,
        [(b[0], wy[0], wx[0]) for b, (wy, wx) in zip(boxes, win, strict=True)],
        hw,
        spec.context,
    )
    if spec.intensity_norm == "image":
        stack.whole_slice_ranges()
    g = 2 * spec.context + 1
    mids = [n * g + spec.context for n in range(len(boxes))]
    plane = (stack.shape[0], *hw)
    tta = cfg.score == "tta-variance"
    sink = _Sink(plane if k == 2 else (plane[0], k, *hw))
    var = _Sink(plane) if tta else None
    pc = dataclasses.replace(pcfg, tta=tta, uncertainty=tta)
    run(predict_stack(model, stack, pc, prob_out=sink, uncertainty_out=var, slices=mids))
    out = []
    for f, (_, y, x, h, w), (wy, wx) in zip(mids, boxes, win, strict=True):
        cy, cx = slice(y - wy[0], y - wy[0] + h), slice(x - wx[0], x - wx[0] + w)
        if tta:
            u = var.values[f][cy, cx] / 0.25
        else:
            u = pixel_uncertainty(sink.values[f][..., cy, cx], k)
        out.append(float(np.mean(u)))
    return out, len(boxes) * hw[0] * hw[1]


def suggest_regions(
    model: Any,
    image: Any,
    mask: Any = None,
    cfg: SuggestConfig | None = None,
    *,
    sparse: bool = False,
    predict_cfg: Any = None,
    channel_axis: int | None = None,
    stop: StopToken | None = None,
) -> Generator[Progress, None, SuggestResult]:
    """Rank unannotated squares of ``image`` by the model's uncertainty (module docstring).

    ``mask``: the annotation so far ((Z, Y, X) like the image; None = nothing painted);
    ``sparse``: it holds scribbles (0 = unlabelled) rather than fully painted slices.
    ``predict_cfg``: tiling / device / precision of the predictions (PredictConfig).
    Yields Progress per scored square; returns :class:`SuggestResult` (the regions found
    so far when stopped).
    """
    from ..config.predict import PredictConfig

    cfg = cfg or SuggestConfig()
    pcfg = predict_cfg or PredictConfig()
    vol = as_volume(image, channel_axis=channel_axis)
    mvol = None if mask is None else as_mask(mask, vol)
    Z, _, Y, X = vol.shape
    h, w = min(cfg.size, Y), min(cfg.size, X)
    starts = (grid_starts(Y, cfg.size), grid_starts(X, cfg.size))
    done = annotated_cells(mvol, Z, starts, (h, w), sparse, cfg.painted)
    free = np.argwhere(~done)
    if len(free) == 0:
        raise InputError(
            "every region is annotated already: train on it, or choose a smaller region size"
        )
    rng = np.random.default_rng(cfg.seed)
    if cfg.max_regions is not None and len(free) > cfg.max_regions:
        free = free[np.sort(rng.choice(len(free), cfg.max_regions, replace=False))]
    res = SuggestResult(candidates=int((~done).sum()), starts=starts)
    res.score_map = np.full(done.shape, np.nan, np.float32)
    yield from _score_all(model, vol, free, (h, w), cfg, pcfg, res, stop)
    scored = np.argwhere(np.isfinite(res.score_map))
    centres = np.array(
        [(z, starts[0][i] + h / 2, starts[1][j] + w / 2) for z, i, j in scored], np.float64
    ).reshape(-1, 3)
    scores = np.array([res.score_map[z, i, j] for z, i, j in scored])
    picked = choose(centres, scores, cfg.n, cfg.diversity * cfg.size, cfg.z_distance)
    for rank, p in enumerate(picked, 1):
        z, i, j = (int(v) for v in scored[p])
        res.regions.append(Region(rank, z, starts[0][i], starts[1][j], h, w, float(scores[p])))
    return res


CHUNK = 32  # squares per batched prediction (progress and Stop between chunks)


def _score_all(model, vol, free, hw, cfg, pcfg, res, stop) -> Generator[Progress, None, None]:
    t0, px = time.monotonic(), 0
    for n in range(0, len(free), CHUNK):
        part = free[n : n + CHUNK]
        boxes = [(int(z), res.starts[0][i], res.starts[1][j], *hw) for z, i, j in part]
        scores, p = score_regions(model, vol, boxes, cfg, pcfg)
        for (z, i, j), v in zip(part, scores, strict=True):
            res.score_map[z, i, j] = v
        px += p
        res.scored, res.mpix, res.seconds = n + len(part), px / 1e6, time.monotonic() - t0
        yield Progress(
            stage="suggest",
            step=res.scored,
            total=len(free),
            elapsed=res.seconds,
            rate=res.mpix / max(res.seconds, 1e-9),
            message=f"scored {res.scored}/{len(free)} regions",
        )
        if stop is not None and stop.requested:
            res.stopped = True
            return


__all__ = [
    "Region",
    "SuggestConfig",
    "SuggestResult",
    "choose",
    "grid_starts",
    "pixel_uncertainty",
    "suggest_regions",
]
