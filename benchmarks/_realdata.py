"""Loaders for the real EM data sets in ``../shared/data`` (benchmarks and slow tests).

The data live outside the repository (see ``../shared/data/README.md``); nothing here
copies them. Every loader raises :class:`DataMissing` (a ``FileNotFoundError``) with a
clear message when the folder is absent, so tests can ``pytest.skip`` on it.

* :func:`isbi2012` -> ``(volume (20, 512, 512) uint8, labels (20, 512, 512) uint8)``,
  labels 1 = membrane.
* :func:`emps_split` -> deterministic train / held-out split of the EMPS train list
  (by name, so it does not depend on file-system order), each a list of
  ``(name, image (H, W) uint8, mask (H, W) uint8)``, mask 1 = particle.
* :func:`metaldam` / :func:`stem` -> ``(names, images, masks)`` lists of the multi-class
  folders (MetalDAM SEM, 5 phases; HAADF-STEM alumina + Pt, 3 classes), sorted by name,
  masks uint8 class ids; :data:`METALDAM_CLASSES` / :data:`STEM_CLASSES` name them.
  :func:`hash_split` holds out a deterministic share of the names (ranked by name hash).
* :func:`default_probabilities` -> a trained model's probabilities through the default
  prediction path (``predict_stack``, ``PredictConfig(device="cpu")``), as users get them:
  the one way the benchmarks score fit()'s models.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


class DataMissing(FileNotFoundError):
    """The shared real-data folder (or one of its files) is not there."""


def data_root() -> Path:
    """``$TEMSEG_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("TEMSEG_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data").resolve()


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataMissing(
            f"real data not found: {path} (expected the shared data folder ../shared/data)"
        )
    return path


def isbi2012() -> tuple[np.ndarray, np.ndarray]:
    """The ISBI 2012 training stack and its labels (1 = membrane, 0 = cell interior)."""
    import tifffile

    d = _need(data_root() / "isbi2012")
    vol = tifffile.imread(_need(d / "train-volume.tif"))
    lab = tifffile.imread(_need(d / "train-labels.tif"))
    lab = (lab > 0).astype(np.uint8)  # robust to 0/255 exports
    return np.ascontiguousarray(vol), np.ascontiguousarray(lab)


def emps_names() -> list[str]:
    """Image names of the EMPS train list (``train.csv``), in file order."""
    d = _need(data_root() / "emps")
    lines = _need(d / "train.csv").read_text().split()
    return [
        n.strip() for n in lines if n.strip() and n.strip().lower() not in ("name", "id", "image")
    ]


def emps_item(name: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(name, image (H, W) uint8, mask (H, W) uint8 with 1 = particle)."""
    from PIL import Image

    d = data_root() / "emps" / "train"
    img = np.asarray(Image.open(_need(d / "images" / f"{name}.png")).convert("L"))
    mask = np.asarray(Image.open(_need(d / "masks" / f"{name}.png")))
    if mask.ndim == 3:
        mask = mask[..., 0]
    return name, np.ascontiguousarray(img), (mask > 0).astype(np.uint8)


def _name_hash(name: str) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)


def _held_out(name: str, fraction: float) -> bool:
    """Stable pseudo-random membership from the name's hash (independent of list order)."""
    return _name_hash(name) < fraction * 16**8


def emps_split(
    fraction: float = 0.2, limit_train: int | None = None, limit_test: int | None = None
):
    """(train, test) lists of ``(name, image, mask)``; ~``fraction`` of the names held out.

    ``limit_*`` keep the first N (sorted by name) of each part, for quick runs.
    """
    names = sorted(emps_names())
    test = [n for n in names if _held_out(n, fraction)]
    train = [n for n in names if not _held_out(n, fraction)]
    train, test = train[:limit_train], test[:limit_test]
    return [emps_item(n) for n in train], [emps_item(n) for n in test]


METALDAM_CLASSES = ("matrix", "austenite", "martensite-austenite", "precipitate", "defect")
STEM_CLASSES = ("background", "alumina", "Pt")


def _class_folder(sub: str) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """(names, images (H, W) uint8, masks (H, W) uint8 class ids) of ``<sub>/train``."""
    from PIL import Image

    d = _need(data_root() / sub / "train")
    names = sorted(p.stem for p in _need(d / "images").glob("*.png"))
    if not names:
        raise DataMissing(f"no images in {d / 'images'}")
    images, masks = [], []
    for n in names:
        image = Image.open(d / "images" / f"{n}.png").convert("L")
        images.append(np.ascontiguousarray(np.asarray(image)))
        mask = np.asarray(Image.open(_need(d / "masks" / f"{n}.png")))
        masks.append(np.ascontiguousarray(mask[..., 0] if mask.ndim == 3 else mask))
    return names, images, masks


def metaldam() -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """MetalDAM SEM micrographs: labels 0 matrix, 1 austenite, 2 martensite/austenite,
    3 precipitate, 4 defect (:data:`METALDAM_CLASSES`)."""
    return _class_folder("metaldam")


def stem() -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """HAADF-STEM alumina/Pt patches: labels 0 background/pores, 1 gamma-alumina,
    2 Pt particles (:data:`STEM_CLASSES`)."""
    return _class_folder("stem_alumina_pt")


def hash_split(names: list[str], fraction: float = 0.25) -> tuple[list[int], list[int]]:
    """(train, held-out) indices into ``names``: the ``round(fraction * n)`` names (at least
    one) with the lowest name hash are held out. The same hash as :func:`_held_out`, but
    ranked, so small folders get the share asked for (a threshold on 30 hashes can miss it
    by several names). Independent of list order."""
    n_out = max(1, int(round(fraction * len(names))))
    ranked = sorted(range(len(names)), key=lambda i: (_name_hash(names[i]), names[i]))
    test = sorted(ranked[:n_out])
    return [i for i in range(len(names)) if i not in set(test)], test


def default_probabilities(
    model, image: np.ndarray, slices: list[int] | None = None, **options
) -> np.ndarray:
    """Probabilities of ``slices`` (all when None), stacked in that order, predicted through
    the default path: tiles, calibrated norm statistics, ``PredictConfig(device="cpu")``
    (``options``: other PredictConfig fields, e.g. ``tta=True``)."""
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.progress import run

    res = run(predict_stack(model, image, PredictConfig(device="cpu", **options), slices=slices))
    return np.asarray(res.prob[res.slices], np.float32)


def available(what: str = "all") -> bool:
    try:
        if what in ("isbi2012", "all"):
            _need(data_root() / "isbi2012" / "train-volume.tif")
        if what in ("emps", "all"):
            _need(data_root() / "emps" / "train.csv")
        if what in ("metaldam", "all"):
            _need(data_root() / "metaldam" / "train" / "images")
        if what in ("stem", "all"):
            _need(data_root() / "stem_alumina_pt" / "train" / "images")
    except DataMissing:
        return False
    return True
