"""Distributed inference: the per-slab predictor mapped over a dask array chunked along Z.

Each Z chunk (plus ``context`` neighbouring slices, via ``dask.array.overlap``) is
predicted by :func:`predict.predict_stack` in a worker, with the model loaded
once per worker process from its file (cached), and the results are stored into
zarr (one task per chunk, chunk-aligned writes, no locks). Works with the local
threaded scheduler or any ``dask.distributed`` cluster (a ``Client`` in scope).
For a multi-machine cluster pass the model *path* and a zarr input that every
worker can read.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..data.volume import Volume, guess_axes
from ..errors import InputError
from ..modelfile.format import TrainedModel, read_metadata

_CACHE: dict[tuple, TrainedModel] = {}
_LOCK = threading.Lock()
LOADS = {"count": 0}  # how many times a model file was read (tests: once per worker)


def _cached_model(ref: Any, device: str) -> TrainedModel:
    if isinstance(ref, TrainedModel):
        return ref
    from ..modelfile.format import load_model

    key = (str(ref), os.path.getmtime(ref), str(device))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load_model(ref)
            LOADS["count"] += 1
        return _CACHE[key]


class _Window:
    """A (Z, C, Y, X) view whose slices ``lo .. lo + len(block)`` are in memory."""

    def __init__(self, block: np.ndarray, lo: int, depth: int):
        self.block, self.lo = block, lo
        self.shape = (depth,) + tuple(block.shape[1:])
        self.dtype = block.dtype

    def __getitem__(self, idx: tuple) -> np.ndarray:
        return self.block[(idx[0] - self.lo,) + tuple(idx[1:])]


class _Shift:
    """Output sink for slices ``s .. e`` of a stack of depth ``depth``."""

    def __init__(self, out: np.ndarray, s: int, depth: int):
        self.out, self.s = out, s
        self.shape, self.dtype = (depth,) + out.shape[1:], out.dtype

    def __setitem__(self, z: int, v: np.ndarray) -> None:
        self.out[z - self.s] = v


def _block(
    block: np.ndarray,
    block_info: Any = None,
    *,
    ref: Any,
    k: int,
    depth: int,
    rgb: bool,
    cfg: Any,
    n_out: int = 1,
    norm_tiles: Any = None,
) -> np.ndarray:
    from ..progress import run
    from .predict import predict_stack

    s, e = block_info[None]["array-location"][0]
    lo = max(0, s - k)
    vol = Volume(_Window(np.asarray(block), lo, depth), "ZCYX", rgb_to_gray=rgb)
    out = np.zeros((e - s,) + ((n_out,) if n_out > 1 else ()) + vol.shape[2:], np.float32)
    model = _cached_model(ref, cfg.device)
    run(
        predict_stack(
            model,
            vol,
            cfg,
            prob_out=_Shift(out, s, depth),
            slices=range(s, e),
            norm_tiles=norm_tiles,
        )
    )
    return out


def _norm_tiles(ref: Any, arr: Any, rgb: bool, cfg: Any) -> np.ndarray | None:
    """Instance-norm calibration tiles of the whole array (``calibrate.py``), so that every
    chunk is normalised alike; None when the model has no instance norm."""
    from . import calibrate, flatfield

    if cfg.norm_stats not in calibrate.STACK_MODES:  # not even the model file to read
        return None
    model = _cached_model(ref, cfg.device)
    if not calibrate.wanted(cfg, model.net):
        return None
    vol = flatfield.prepared(model, model.net, Volume(arr, "ZCYX", rgb_to_gray=rgb), cfg)
    return calibrate.stack_tiles(model, vol)


def _canonical(arr: Any, channel_axis: int | None) -> tuple[Any, bool]:
    """A dask array as (Z, C, Y, X), one chunk over C, Y, X."""
    import dask.array as da

    if not isinstance(arr, da.Array):
        arr = da.from_array(
            arr, chunks=(1,) + tuple(arr.shape[1:]) if len(arr.shape) > 2 else arr.shape
        )
    axes, rgb = guess_axes(arr.shape, channel_axis, arr.dtype)
    for ax in "ZC":
        if ax not in axes:
            arr, axes = arr[None], ax + axes
    arr = arr.transpose([axes.index(a) for a in "ZCYX"])
    return arr.rechunk({1: -1, 2: -1, 3: -1}), rgb


def _postprocess_block(p: np.ndarray, thr: float, post: dict) -> np.ndarray:
    """Labels of a block of slices: (z, Y, X) binary probabilities at ``thr``, or (z, K, Y, X)
    class probabilities (``post`` then carries ``min_confidence``)."""
    from .postprocess import class_labels, postprocess

    if p.ndim == 4:
        return np.stack([class_labels(s, **post) for s in p]).reshape(p.shape[:1] + p.shape[2:])
    return np.stack([postprocess(s >= thr, **post)[0] for s in p]) if len(p) else p.astype(np.uint8)


def _store(sources: list, targets: list) -> None:
    """``dask.array.store`` that, when a chunk fails, raises only once no other chunk can
    still write: the caller then removes the outputs, and a late write would bring them back
    half-filled. On a ``distributed`` cluster the queued tasks are cancelled and the running
    ones waited for; locally the chunks run on a thread pool that is shut down, waiting."""
    from concurrent.futures import ThreadPoolExecutor

    import dask.array as da

    client = _client()
    if client is None:
        pool = ThreadPoolExecutor(os.cpu_count() or 1)
        try:
            da.store(sources, targets, lock=False, scheduler="threads", pool=pool)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    stored = da.store(sources, targets, lock=False, compute=False)
    stored = list(stored) if isinstance(stored, (tuple, list)) else [stored]
    keys = {str(key) for d in stored for key in d.__dask_graph__()}
    futures = client.compute(stored, optimize_graph=False)  # keep the keys: see below
    try:
        client.gather(futures)
    except BaseException:
        client.cancel(futures, force=True)
        _wait_until_done(client, keys)
        raise


def _client() -> Any:
    """The ``distributed`` client in scope, or None (local threads)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client
        return None


def _running_keys(dask_worker: Any) -> list[str]:
    """Keys of the tasks whose thread still runs on a worker, cancelled ones included."""
    state = dask_worker.state
    return [str(ts.key) for ts in (*state.executing, *state.long_running)]


def _wait_until_done(client: Any, keys: set[str], timeout: float = 300.0) -> None:
    """Wait until no worker thread runs any of ``keys``: a cancelled task whose thread
    already started cannot be stopped, and the scheduler forgets it at once."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            running = client.run(_running_keys)
        except Exception:  # no workers / scheduler gone: nothing left that could write
            return
        if not {k for ks in running.values() for k in ks} & keys:
            return
        time.sleep(0.1)


def _model_ref(model_or_path: Any) -> tuple[Any, int, float, int]:
    """(what workers load the model from, context, threshold, output channels)."""
    if isinstance(model_or_path, TrainedModel):
        m = model_or_path
        return m, m.context, m.threshold, m.model_cfg.classes
    meta = read_metadata(model_or_path)
    return (
        str(Path(model_or_path).resolve()),
        int(meta["input"].get("context", 0)),
        float(meta.get("threshold", 0.5)),
        int(meta["model"].get("classes", 1)),
    )


def predict_dask(
    model_or_path: Any,
    array: Any,
    out_zarr_path: str | os.PathLike,
    cfg: Any = None,
    *,
    labels_zarr_path: str | os.PathLike | None = None,
    channel_axis: int | None = None,
    overwrite: bool = False,
) -> Any:
    """Predict ``array`` (dask / zarr / numpy; chunked along Z) into ``out_zarr_path``.

    ``cfg``: a PredictConfig, as for :func:`predict.predict_stack`. Instance labels and
    the uncertainty output are not available here (ids would clash across chunks). A
    K-class model writes (Z, K, Y, X) probabilities and class ids, as predict_stack does.
    Returns a :class:`predict.PredictResult` with the zarr arrays.
    """
    import dataclasses
    import time

    import dask.array as da

    from ..config.predict import PredictConfig
    from ..data.write import create_output
    from .outputs import output_specs
    from .postprocess import post_options, to_prob_dtype
    from .predict import PredictResult

    cfg = PredictConfig() if cfg is None else cfg
    if cfg.instances or cfg.uncertainty:
        raise InputError(
            "distributed prediction writes probability and labels only: "
            "turn off instances and uncertainty"
        )
    ref, k, thr0, n_out = _model_ref(model_or_path)
    thr = thr0 if cfg.threshold is None else float(cfg.threshold)
    arr, rgb = _canonical(array, channel_axis)
    Z, _, Y, X = arr.shape
    if k and min(arr.chunks[0]) < k:
        arr = arr.rechunk({0: max(k, arr.chunks[0][0])})
    ghost = da.overlap.overlap(arr, depth={0: k, 1: 0, 2: 0, 3: 0}, boundary="none") if k else arr
    per_class = ((n_out,),) if n_out > 1 else ()  # K classes: (Z, K, Y, X)
    prob = ghost.map_blocks(
        _block,
        dtype=np.float32,
        chunks=(arr.chunks[0], *per_class, (Y,), (X,)),
        drop_axis=() if per_class else 1,
        ref=ref,
        k=k,
        depth=Z,
        rgb=rgb,
        cfg=dataclasses.replace(cfg, threshold=thr),
        n_out=n_out,
        norm_tiles=_norm_tiles(ref, arr, rgb, cfg),
    )
    p_out, l_out = output_specs((Z, Y, X), cfg, max(n_out, 2))[:2]
    pdt = p_out.dtype
    targets = [create_output(out_zarr_path, p_out.shape, pdt, overwrite=overwrite)]
    sources = [prob.map_blocks(to_prob_dtype, pdt, dtype=pdt)]
    if labels_zarr_path is not None:
        post = post_options(cfg, max(n_out, 2))
        targets.append(
            create_output(labels_zarr_path, l_out.shape, l_out.dtype, overwrite=overwrite)
        )
        sources.append(
            prob.map_blocks(
                _postprocess_block, thr, post, dtype=l_out.dtype, drop_axis=1 if per_class else ()
            )
        )
    t0 = time.monotonic()
    _store(sources, targets)
    sec = time.monotonic() - t0
    return PredictResult(
        prob=targets[0],
        labels=targets[1] if len(targets) > 1 else None,
        slices=list(range(Z)),
        seconds=sec,
        mpix_per_s=Z * Y * X / max(sec, 1e-9) / 1e6,
        device=cfg.device,
    )


__all__ = ["predict_dask", "LOADS"]
