"""The seed papers' settings, one word each (``recipe``): defaults that explicit options override.

A recipe sets model, augmentation, loss, optimiser, learning rate, batch, validation split
and threshold as the paper describes them (``docs/seeds.md``: what each paper reported and
what differs here). ``train_configs`` applies it under the options a front end was given:
``recipe="resunet-2020", lr=1e-4`` is the paper's setting with one change. The recipe's name
is stored with the model (``TrainConfig.recipe``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError


@dataclass(frozen=True)
class Recipe:
    name: str
    seed: str  # the paper's file in ../shared/papers: 000 .. 004
    paper: str
    metric: str  # what the paper reports (temseg evaluate prints all of them)
    values: dict[str, Any] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "tem-unet",
            "000",
            "U-Net for TEM images of materials samples (Augmentor rotate/distort/zoom)",
            "Dice",
            dict(
                arch="unet",
                norm_layer="batch",
                augment="augmentor",
                loss="bce",
                optimizer="adam",
                lr=1e-4,
                batch=4,
                val_fraction=0.2,
                threshold=0.5,
            ),
        ),
        Recipe(
            "small-unet-2018",
            "001",
            "the small Keras U-Net (16-256 filters, transposed convolutions), mean IoU",
            "mean IoU",
            dict(
                arch="small-unet",
                base_width=16,
                norm_layer="batch",
                augment="flips",
                loss="bce",
                optimizer="adam",
                lr=1e-3,
                batch=16,
                patch=128,
                val_fraction=0.2,
                threshold=0.5,
            ),
        ),
        Recipe(
            "resunet-2020",
            "002",
            "Deep Residual U-Net on TEM nuclei (rotate/scale/translate, threshold 0.6)",
            "Dice",
            dict(
                arch="resunet",
                base_width=64,
                norm_layer="batch",
                augment="rotate-scale-translate",
                loss="bce",
                optimizer="adam",
                lr=1e-5,
                batch=2,
                val_fraction=0.2,
                threshold=0.6,
            ),
        ),
        Recipe(
            "fibsem-sensor3d",
            "003",
            "FIB-SEM phases with Sensor3D on 3 slices x 2 detectors, 25 % validation",
            "per-class IoU",
            dict(arch="sensor3d", context=1, val_fraction=0.25, loss="bce+dice"),
        ),
        Recipe(
            "mito-unet",
            "004",
            "2D U-Net for mitochondria (crop/flip/brightness, Dice loss), IoU",
            "IoU",
            dict(
                arch="unet",
                norm_layer="batch",
                augment="flip-brightness",
                loss="dice",
                optimizer="adam",
                lr=1e-3,
                batch=4,
                val_fraction=0.0,
                threshold=0.5,
            ),
        ),
    )
}
RECIPE_NAMES = tuple(RECIPES)


def with_recipe(values: dict) -> dict:
    """Option values with the named recipe's defaults under them (explicit values win)."""
    name = values.get("recipe")
    if not name:
        return values
    if name not in RECIPES:
        raise InputError(f"unknown recipe '{name}': use one of {', '.join(RECIPE_NAMES)}")
    return {**RECIPES[name].values, **values}


def describe() -> str:
    """One block per recipe: name, paper, what it sets (``temseg recipes``)."""
    out = []
    for r in RECIPES.values():
        sets = ", ".join(f"{k}={v}" for k, v in r.values.items())
        out.append(f"{r.name}  (paper {r.seed}, reports {r.metric})\n  {r.paper}\n  {sets}")
    return "\n\n".join(out)


__all__ = ["Recipe", "RECIPES", "RECIPE_NAMES", "with_recipe", "describe"]
