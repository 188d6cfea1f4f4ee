"""The seed papers' recipes: each trains, explicit options override it, and the
CLI, the console and the Train dock take the same names."""

import numpy as np
import pytest

from napari_temseg.core.config.model import ModelConfig
from napari_temseg.core.config.options import train_configs
from napari_temseg.core.config.recipes import RECIPE_NAMES, RECIPES
from napari_temseg.core.config.train import TrainConfig
from napari_temseg.core.errors import InputError
from napari_temseg.core.progress import run
from napari_temseg.core.training.loop import fit

TINY = dict(epochs=1, steps_per_epoch=1, patch=64, batch=2, base_width=4, device="cpu", seed=0)


def stack(z=3, size=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    lab = np.zeros((z, size, size), np.uint8)
    for k in range(z):
        cy, cx = rng.integers(16, size - 16, 2)
        lab[k][(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = 1
    img = 0.3 + 0.4 * lab + rng.normal(0, 0.05, lab.shape)
    return img.astype(np.float32), lab


def test_there_is_a_recipe_for_each_paper():
    assert sorted(r.seed for r in RECIPES.values()) == ["000", "001", "002", "003", "004"]


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_every_recipe_trains(name):
    tcfg, mcfg = train_configs({"recipe": name, **TINY})
    recipe = RECIPES[name].values
    for key, value in recipe.items():  # everything the recipe sets, unless given above
        if key not in TINY:
            cfg = tcfg if hasattr(tcfg, key) else mcfg
            assert getattr(cfg, key) == value, key
    img, lab = stack()
    model = run(fit(img, lab, train_cfg=tcfg, model_cfg=mcfg))
    assert model.train_cfg.recipe == name and model.model_cfg.arch == recipe["arch"]
    assert model.threshold == tcfg.threshold
    assert model.input_spec.context == recipe.get("context", 0)


def test_explicit_options_override_the_recipe_and_no_recipe_is_the_defaults():
    tcfg, mcfg = train_configs({"recipe": "resunet-2020", "lr": 3e-4, "arch": "unet"})
    assert (tcfg.lr, mcfg.arch, tcfg.batch, tcfg.threshold) == (3e-4, "unet", 2, 0.6)
    assert train_configs({}) == (TrainConfig(), ModelConfig())
    assert train_configs({"recipe": None}) == (TrainConfig(), ModelConfig())
    with pytest.raises(InputError, match="unknown recipe 'nope': use one of tem-unet"):
        train_configs({"recipe": "nope"})


def test_cli_recipes_and_train_with_one(tmp_path, capsys):
    import tifffile

    from napari_temseg.cli import main
    from napari_temseg.core.modelfile.format import read_metadata

    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in RECIPE_NAMES) and "paper 002" in listed
    img, lab = stack()
    tifffile.imwrite(tmp_path / "img.tif", img, photometric="minisblack")
    tifffile.imwrite(tmp_path / "mask.tif", lab, photometric="minisblack")
    out = tmp_path / "m.safetensors"
    args = ["train", str(tmp_path / "img.tif"), str(tmp_path / "mask.tif"), "-o", str(out)]
    args += ["--recipe", "resunet-2020", "--lr", "0.0001", "--base-width", "8", "--patch", "64"]
    args += ["--epochs", "1", "--steps-per-epoch", "1", "--device", "cpu", "-q"]
    assert main(args) == 0
    meta = read_metadata(out)
    assert meta["train"]["recipe"] == "resunet-2020" and meta["model"]["arch"] == "resunet"
    assert (meta["train"]["lr"], meta["train"]["batch"], meta["threshold"]) == (1e-4, 2, 0.6)


def test_api_train_with_a_recipe():
    from napari_temseg import api

    img, lab = stack()
    model = api.train(img, lab, recipe="mito-unet", verbose=False, **TINY)
    assert model.train_cfg.loss == "dice" and model.train_cfg.augment == "flip-brightness"


@pytest.mark.gui
def test_train_dock_shows_the_recipe_and_the_user_changes_one_thing(make_napari_viewer):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-temseg", "Train")
    w.recipe.value = "resunet-2020"
    assert (w.arch.value, w.lr.value, w.batch.value) == ("resunet", 1e-5, 2)
    w.lr.value = 1e-4  # one change on top of the paper's setting
    tcfg, mcfg = w.configs()
    assert (tcfg.recipe, tcfg.lr, tcfg.batch, tcfg.threshold) == ("resunet-2020", 1e-4, 2, 0.6)
    assert (mcfg.arch, mcfg.base_width) == ("resunet", 64)
    w.recipe.value = "fibsem-sensor3d"  # the previous recipe's values go back to defaults
    tcfg, mcfg = w.configs()
    assert (mcfg.arch, tcfg.context, tcfg.val_fraction) == ("sensor3d", 1, 0.25)
    assert (tcfg.lr, tcfg.batch, tcfg.threshold) == (TrainConfig().lr, TrainConfig().batch, 0.5)
    w.recipe.value = "none"
    assert w.configs() == (TrainConfig(), ModelConfig())
