"""Many files in, one output per file: the plan of a folder prediction and its pre-flight.

Everything is checked before the first output is created, so a mistake costs nothing and
leaves no half-made folder: :func:`plan_jobs` names every output, :func:`check_jobs` the
paths (output types, distinct from each other and from the inputs, new or ours to replace,
in a writable folder), :func:`check_images` every image (the model's channels, the slices
asked for) and :func:`check_free_space` the drives (TIFF outputs are uncompressed memory maps
of a known size). :func:`no_partial_outputs` then replaces or creates one image's outputs
and removes them again when that image fails or is stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.read import is_image_folder, list_images, read_image
from ..data.volume import as_volume, check_channels
from ..data.write import check_output_path, remove_output
from ..errors import InputError
from .outputs import OUTPUT_NAMES, output_specs

FILE_FORMATS = (".tif", ".tiff", ".zarr")
CHANNELS_FIX = "choose the image (or channel_axis, --channel-axis) the model was trained on"


@dataclass(frozen=True)
class FileJob:
    """One image and the paths of its outputs (None: not written)."""

    image: Path
    prob: Path
    labels: Path | None = None
    uncertainty: Path | None = None

    def outputs(self) -> list[tuple[str, Path]]:
        """(output name, path) of every output this job writes."""
        paths = (self.prob, self.labels, self.uncertainty)
        return [(n, p) for n, p in zip(OUTPUT_NAMES, paths, strict=True) if p is not None]


def image_files(image: Any) -> tuple[list[Path], bool]:
    """(the image files, whether each gets its own file in output folders): a folder of
    images or a list of files (one output per file), or one file."""
    if isinstance(image, (list, tuple)):
        files = [Path(p) for p in image]
        if not files:
            raise InputError("the list of images is empty: give image files or a folder")
        for p in files:
            if not p.exists():
                raise InputError(f"image '{p}' not found: check the path")
        return files, True
    return list_images(image), is_image_folder(image)


def plan_jobs(
    image: Any,
    output: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    *,
    fmt: str = ".tif",
    uncertainty: bool = False,
) -> list[FileJob]:
    """One FileJob per image of ``image`` (a file, a folder or a list of files). For one
    file ``output`` / ``labels`` are files; otherwise folders receiving ``<image stem><fmt>``.
    With ``uncertainty`` the spread goes beside the probability as ``<name>-uncertainty``."""
    if output is None:
        raise InputError("name the probability output (-o, output=): a .tif, .zarr or a folder")
    if fmt.lower() not in FILE_FORMATS:
        raise InputError(f"output format '{fmt}' must be one of {', '.join(FILE_FORMATS)}")
    files, many = image_files(image)

    def place(base: Any, img: Path) -> Path | None:
        if base is None:
            return None
        return Path(base) / (img.stem + fmt) if many else Path(base)

    jobs = []
    for img in files:
        prob = place(output, img)
        unc = prob.with_name(f"{prob.stem}-uncertainty{prob.suffix}") if uncertainty else None
        jobs.append(FileJob(img, prob, place(labels, img), unc))
    return jobs


def check_jobs(jobs: Sequence[FileJob], *, overwrite: bool = False, model_file: Any = None) -> None:
    """Every output path usable before any is created: a .tif / .zarr, not an input (an
    image, ``model_file``), named once, new or (``overwrite``) an output of ours, in a
    folder that exists or can be created and is writable."""
    inputs = {j.image.resolve(): "the input image" for j in jobs}
    if model_file is not None:
        inputs[Path(model_file).resolve()] = "the model file"
    seen: dict[Path, str] = {}
    for job in jobs:
        for name, path in job.outputs():
            if path.suffix.lower() not in FILE_FORMATS:
                raise InputError(f"output '{path}' must end in .tif, .tiff or .zarr")
            real = path.resolve()
            if real in inputs:
                raise InputError(
                    f"output '{path}' is an input ({inputs[real]}); choose another name"
                )
            what = f"the {name} output" + (f" of '{job.image.name}'" if len(jobs) > 1 else "")
            if real in seen:
                raise InputError(
                    f"{seen[real]} and {what} both name '{path}': give each output its own name"
                )
            seen[real] = what
            check_output_path(path, overwrite=overwrite)


def spatial(shape: tuple[int, int, int]) -> tuple[int, ...]:
    """The output shape of a (Z, Y, X) image: (Y, X) for one slice."""
    Z, Y, X = shape
    return (Y, X) if Z == 1 else (Z, Y, X)


def check_images(
    jobs: Sequence[FileJob],
    channels: int,
    *,
    channel_axis: int | None = None,
    slices: Sequence[int] | None = None,
    fix: str = CHANNELS_FIX,
) -> list[tuple[int, int, int]]:
    """Every image opens with the model's ``channels`` and holds the ``slices`` asked for;
    returns the (Z, Y, X) of each (headers only: images are read lazily)."""
    shapes = []
    for job in jobs:
        img = job.image
        vol = as_volume(read_image(img, channel_axis), channel_axis=channel_axis)
        Z, have, Y, X = vol.shape
        check_channels(channels, have, f"'{img.name}'", fix)
        bad = [z for z in slices or () if not 0 <= z < Z]
        if bad:
            raise InputError(
                f"slices {bad[:5]} are outside '{img.name}' (slices 0..{Z - 1}); "
                "choose slices of the stack"
            )
        shapes.append((int(Z), int(Y), int(X)))
    return shapes


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_free_space(
    jobs: Sequence[FileJob],
    shapes: Sequence[tuple[int, int, int]],
    cfg: Any,
    k: int = 2,
    overwrite: bool = False,
) -> None:
    """The TIFF outputs of all jobs fit their drives (less what ``overwrite`` replaces), so
    a full disk is found now and not hours into a folder. zarr stores are compressed: their
    size is unknown beforehand and each chunk's write error is caught as it happens."""
    need: dict[int, list] = {}
    for job, shape in zip(jobs, shapes, strict=True):
        sizes = {o.name: o.nbytes for o in output_specs(spatial(shape), cfg, k)}
        for name, path in job.outputs():
            if path.suffix.lower() == ".zarr":
                continue
            folder = _existing(path.parent)
            freed = path.stat().st_size if overwrite and path.is_file() else 0
            entry = need.setdefault(os.stat(folder).st_dev, [folder, 0])
            entry[1] += sizes[name] - freed
    for folder, n in need.values():
        free = shutil.disk_usage(folder).free
        if n > free:
            raise InputError(
                f"the outputs need about {n / 2**20:.1f} MB on the drive of '{folder}', which "
                f"has {free / 2**20:.1f} MB free: free some space, choose another folder or "
                "write .zarr (compressed)"
            )


@contextlib.contextmanager
def no_partial_outputs(job: FileJob, overwrite: bool = False) -> Iterator[None]:
    """Replace (``overwrite``, ours: checked) or create the job's outputs; if anything fails
    or interrupts, remove what this job wrote - files, zarr stores and the folders made for
    them."""
    paths = [p for _, p in job.outputs()]
    made_dirs = sorted(
        {d for p in paths for d in p.parents if not d.exists()},
        key=lambda d: len(d.parts),
        reverse=True,
    )
    for p in paths:
        if overwrite and p.exists():
            check_output_path(p, overwrite=True)
            remove_output(p)
    try:
        yield
    except BaseException as e:
        for p in paths:
            with contextlib.suppress(OSError):
                remove_output(p)
        for d in made_dirs:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty
        if isinstance(e, OSError):
            name_the_path(e, job.image, paths)
        raise


def name_the_path(e: OSError, image: Path, outputs: Sequence[Path]) -> None:
    """Point an OS error at the output or image it concerns (``e.temseg_verb``: what was
    being done, for the one-line message)."""
    if not isinstance(e.filename, (str, bytes, os.PathLike)) or not e.filename:
        e.filename, e.filename2, e.temseg_verb = str(image), str(outputs[0]), "predict"
        return
    where = Path(os.path.abspath(os.fsdecode(e.filename)))
    for path, verb in [*((p, "write") for p in outputs), (image, "read")]:
        target = Path(os.path.abspath(path))
        if where == target or target in where.parents:
            e.filename, e.temseg_verb = str(path), verb
            return


__all__ = [
    "CHANNELS_FIX",
    "FILE_FORMATS",
    "FileJob",
    "check_free_space",
    "check_images",
    "check_jobs",
    "image_files",
    "name_the_path",
    "no_partial_outputs",
    "plan_jobs",
    "spatial",
]
