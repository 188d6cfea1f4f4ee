"""Folder prediction: a file, a folder or a list of images in, one set of output files per
image out - checked first, streamed, and never leaving a half-written file.

:func:`predict_files` is the one implementation behind ``temseg predict`` and
``api.predict(..., output=...)``: a generator that yields Progress, honours a StopToken and
returns a :class:`FolderResult`. It plans and checks everything before the first output
exists (:mod:`.jobs`), then predicts image by image with :func:`predict.predict_stack`
(or :func:`distributed.predict_dask` on a dask cluster), each image's outputs inside
:func:`jobs.no_partial_outputs`: an error, Ctrl-C or a stop removes that image's partial
files; the images finished before keep theirs.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.read import read_image
from ..data.volume import as_volume
from ..data.write import create_output
from ..errors import InputError
from ..modelfile.format import TrainedModel, read_metadata
from ..progress import Progress, StopToken
from . import jobs as J
from .outputs import check_options, output_specs


@dataclass
class FileResult:
    """One image done: its job (paths), its (Z, Y, X) and the predictor's result."""

    job: J.FileJob
    shape: tuple[int, int, int]
    result: Any  # PredictResult


@dataclass
class FolderResult:
    """What :func:`predict_files` did: the images finished (all of them unless
    ``stopped``), out of ``total``, and the model's classes (None on a dask cluster, where
    the model stays a file)."""

    files: list[FileResult] = field(default_factory=list)
    total: int = 0
    stopped: bool = False
    classes: Any = None
    seconds: float = 0.0


class _Stopped(Exception):
    """A stop request inside an image: its outputs are partial, so they go."""


def predict_files(
    model: Any,
    image: Any,
    output: str | os.PathLike,
    cfg: Any = None,
    *,
    labels: str | os.PathLike | None = None,
    fmt: str = ".tif",
    channel_axis: int | None = None,
    slices: Sequence[int] | None = None,
    overwrite: bool = False,
    model_file: Any = None,
    scheduler: str | None = None,
    stop: StopToken | None = None,
) -> Generator[Progress, None, FolderResult]:
    """Predict ``image`` (a file, a folder of images or a list of files) into files.

    ``model``: a TrainedModel or a .safetensors path (a bioimage.io package: load it first,
    ``interop.bioimageio.load.load_any_model``). ``output`` / ``labels``: for one file the
    probability / labels files (.tif, .tiff, .zarr); otherwise folders receiving one
    ``<image stem><fmt>`` per image. With ``cfg.uncertainty`` the spread goes beside the
    probability as ``<name>-uncertainty<suffix>``. ``overwrite`` replaces only outputs
    napari-temseg wrote. ``model_file``: the model's path, never written (default ``model``
    when it is a path). ``scheduler``: the address of a dask.distributed cluster (zarr
    outputs only; ``model`` a path every worker can read). Everything is checked before the
    first output is created; a failed, interrupted or stopped image leaves no file behind.
    """
    from ..config.predict import PredictConfig

    cfg = PredictConfig() if cfg is None else cfg
    jobs = J.plan_jobs(image, output, labels, fmt=fmt, uncertainty=cfg.uncertainty)
    is_path = not isinstance(model, TrainedModel)
    J.check_jobs(jobs, overwrite=overwrite, model_file=model_file or (model if is_path else None))
    slices = None if slices is None else [int(z) for z in slices]
    if scheduler is not None:
        return (
            yield from _on_cluster(model, jobs, cfg, channel_axis, slices, overwrite, scheduler)
        )
    return (yield from _locally(model, jobs, cfg, channel_axis, slices, overwrite, stop))


def _locally(
    model: Any,
    jobs: list,
    cfg: Any,
    channel_axis: Any,
    slices: Any,
    overwrite: bool,
    stop: Any,
) -> Generator[Progress, None, FolderResult]:
    """Each image in turn in this process (:func:`predict.predict_stack`)."""
    if not isinstance(model, TrainedModel):
        from ..modelfile.format import load_model

        model = load_model(model)
    check_options(model, cfg, "turn instances off (instances=False, leave out --instances)")
    shapes = J.check_images(jobs, model.channels, channel_axis=channel_axis, slices=slices)
    J.check_free_space(jobs, shapes, cfg, model.classes.k, overwrite)
    out, t0 = FolderResult(total=len(jobs), classes=model.classes), time.monotonic()
    for i, (job, shape) in enumerate(zip(jobs, shapes, strict=True)):
        if stop is not None and stop.requested:
            out.stopped = True
            break
        tag = f"image {i + 1}/{len(jobs)} {job.image.name}: " if len(jobs) > 1 else ""
        try:
            with J.no_partial_outputs(job, overwrite):
                res = yield from _predict_one(
                    model, job, shape, cfg, channel_axis, slices, stop, tag
                )
                if res.stopped:
                    raise _Stopped
        except _Stopped:
            out.stopped = True
            break
        out.files.append(FileResult(job, shape, res))
    out.seconds = time.monotonic() - t0
    return out


def _predict_one(
    model: Any,
    job: J.FileJob,
    shape: tuple,
    cfg: Any,
    channel_axis: Any,
    slices: Any,
    stop: Any,
    tag: str,
) -> Generator[Progress, None, Any]:
    """One image into its output files (created here: the caller removes them on failure)."""
    from .predict import predict_stack

    vol = as_volume(read_image(job.image, channel_axis), channel_axis=channel_axis)
    specs = {o.name: o for o in output_specs(J.spatial(shape), cfg, model.classes.k)}
    arrays = {
        name: create_output(path, specs[name].shape, specs[name].dtype)
        for name, path in job.outputs()
    }
    gen = predict_stack(
        model,
        vol,
        cfg,
        prob_out=arrays.get("probability"),
        labels_out=arrays.get("labels"),
        uncertainty_out=arrays.get("uncertainty"),
        slices=slices,
        stop=stop,
    )
    res = yield from _tagged(gen, tag)
    for a in arrays.values():
        if hasattr(a, "flush"):  # TIFF memory maps: on disk before the file is read elsewhere
            a.flush()
    return res


def _tagged(gen: Generator, tag: str) -> Generator[Progress, None, Any]:
    """``gen``'s Progress with ``tag`` (which image) before each message; closes ``gen``
    (its threads stop) however this generator ends."""
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as done:
                return done.value
            yield dataclasses.replace(p, message=tag + p.message) if tag else p
    finally:
        gen.close()


def check_cluster_jobs(model: Any, jobs: Sequence[J.FileJob], cfg: Any, slices: Any) -> int:
    """What a dask cluster can do: zarr outputs (chunk-aligned writes), no uncertainty,
    instances or slices, a model file rather than a package; returns the model's channels."""
    if isinstance(model, TrainedModel):
        channels = model.channels
    elif Path(model).is_dir() or Path(model).suffix.lower() in (".zip", ".yaml"):
        raise InputError(
            "distributed prediction (--dask-scheduler, scheduler=) runs .safetensors model "
            "files, not bioimage.io packages: leave it out"
        )
    else:
        channels = int(read_metadata(model)["input"]["channels"])
    outs = [p for j in jobs for _, p in j.outputs()]
    if any(p.suffix.lower() != ".zarr" for p in outs) or cfg.uncertainty or cfg.instances or slices:
        raise InputError(
            "--dask-scheduler (scheduler=) writes zarr only (OUT and --labels ending in .zarr, "
            "--format .zarr for folders) without --uncertainty, --instances, --slices"
        )
    return channels


def _on_cluster(
    model: Any,
    jobs: list,
    cfg: Any,
    channel_axis: Any,
    slices: Any,
    overwrite: bool,
    scheduler: str,
) -> Generator[Progress, None, FolderResult]:
    """Each image in turn over the cluster's workers (:func:`distributed.predict_dask`)."""
    from distributed import Client

    from .distributed import predict_dask

    channels = check_cluster_jobs(model, jobs, cfg, slices)
    shapes = J.check_images(jobs, channels, channel_axis=channel_axis)
    out, t0 = FolderResult(total=len(jobs)), time.monotonic()
    with Client(scheduler):
        for i, (job, shape) in enumerate(zip(jobs, shapes, strict=True)):
            with J.no_partial_outputs(job, overwrite):
                res = predict_dask(
                    model,
                    read_image(job.image, channel_axis),
                    job.prob,
                    cfg,
                    labels_zarr_path=job.labels,
                    channel_axis=channel_axis,
                )
            out.files.append(FileResult(job, shape, dataclasses.replace(res, device=scheduler)))
            yield Progress("predict", i + 1, len(jobs), message=job.image.name)
    out.seconds = time.monotonic() - t0
    return out


__all__ = ["FileResult", "FolderResult", "check_cluster_jobs", "predict_files"]
