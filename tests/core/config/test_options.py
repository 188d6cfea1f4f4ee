"""One option surface: every config field is an option of the CLI, the console API and the
docks, with one name and one default (or is on the documented list of derived fields)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest

from napari_temseg.core.config import options as O
from napari_temseg.core.config.choices import ConfigError
from napari_temseg.core.config.model import ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.config.train import TrainConfig

ROOT = Path(__file__).resolve().parents[3]
OPTION_CLASSES = (ModelConfig, TrainConfig, PredictConfig)
FRONT = {"train": O.TRAIN_CLASSES, "predict": O.PREDICT_CLASSES}
REQUIRED = {
    "train": ["img.tif", "mask.tif", "-o", "m.safetensors"],
    "predict": ["m.safetensors", "img.tif", "-o", "p.tif"],
}


def _subparser(command: str) -> argparse.ArgumentParser:
    from napari_temseg.cli import build_parser

    parser, _ = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _other_value(o: O.Option):
    """A valid value different from the default, written as a user types it."""
    if o.kind is bool:
        return (not o.default), [o.flag if not o.default else "--no-" + o.flag[2:]]
    if o.choices:
        value = next(c for c in o.choices if c != o.default)
        return value, [o.flag, str(value)]
    if o.kind is str:  # free text (class names)
        return "matrix,pores", [o.flag, "matrix,pores"]
    value = o.kind(o.lo if o.default is None else o.default + (o.step or 1))
    return value, [o.flag, str(value)]


def test_every_field_is_an_option_or_documented_as_derived():
    for cls in OPTION_CLASSES:
        names = {f.name for f in dataclasses.fields(cls)}
        described = {o.name for o in O.options(cls)} | set(O.derived(cls))
        assert names == described, f"{cls.__name__}: undescribed fields {names - described}"
        for o in O.options(cls):
            assert o.help and o.label, o.name
            assert o.default == next(f.default for f in dataclasses.fields(cls) if f.name == o.name)


@pytest.mark.parametrize("command", ["train", "predict"])
def test_cli_has_a_flag_per_option_and_the_same_defaults(command):
    from napari_temseg.cli.options import given

    p = _subparser(command)
    flags = {s for a in p._actions for s in a.option_strings}
    opts = O.all_options(*FRONT[command])
    missing = [o.flag for o in opts if o.flag not in flags]
    assert not missing, f"temseg {command} lacks {missing}"
    assert given(p.parse_args(REQUIRED[command]), FRONT[command]) == {}  # defaults = dataclasses'
    for o in opts:
        value, argv = _other_value(o)
        got = given(p.parse_args(REQUIRED[command] + argv), FRONT[command])
        assert got == {o.name: value}, (o.name, argv, got)


def test_cli_help_shows_each_default():
    p = _subparser("train")
    text = " ".join(p.format_help().split())
    for o in O.all_options(*O.TRAIN_CLASSES):
        assert f"(default: {o.text(o.default)})" in text, o.name


def test_cli_values_are_checked_with_a_one_line_message(capsys):
    from napari_temseg.cli import main

    with pytest.raises(SystemExit):
        main(["train", "a.tif", "b.tif", "-o", "m.safetensors", "--augment", "wild"])
    assert "--augment must be one of none, flips" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "a.tif", "b.tif", "-o", "m.safetensors", "--base-width", "wide"])
    assert "--base-width needs a int" in capsys.readouterr().err


@pytest.mark.parametrize("fn,command", [("train", "train"), ("predict", "predict")])
def test_api_takes_every_option_with_the_same_default(fn, command):
    from napari_temseg import api

    params = inspect.signature(getattr(api, fn)).parameters
    for o in O.all_options(*FRONT[command]):
        assert o.name in params, f"api.{fn} lacks {o.name}"
        assert params[o.name].default == o.default, o.name
        assert o.name in getattr(api, fn).__doc__


def test_api_builds_the_default_configs_and_refuses_unknown_names(monkeypatch):
    from napari_temseg import api
    from napari_temseg.core.training import loop as train

    seen = {}

    def fake_fit(images, masks, *, train_cfg, model_cfg, **kw):
        seen.update(train=train_cfg, model=model_cfg)
        return object()
        yield  # a generator

    monkeypatch.setattr(train, "fit", fake_fit)
    img, mask = np.zeros((32, 32), np.float32), np.zeros((32, 32), np.uint8)
    api.train(img, mask, verbose=False)
    assert seen == {"train": TrainConfig(), "model": ModelConfig()}
    api.train(img, mask, epochs=3, lr=1e-4, optimizer="adam", base_width=8, verbose=False)
    assert seen["train"] == TrainConfig(epochs=3, seconds=None, lr=1e-4, optimizer="adam")
    assert seen["model"].base_width == 8
    with pytest.raises(ConfigError, match="did you mean 'base_width'"):
        api.train(img, mask, base_witdh=8)
    with pytest.raises(ConfigError, match="unknown prediction option 'tiles'"):
        api.predict(None, img, tiles=256)


def test_epochs_alone_train_exactly_that_many_epochs():
    tcfg, _ = O.train_configs({"epochs": 5})
    assert tcfg.epochs == 5 and tcfg.seconds is None
    tcfg, _ = O.train_configs({"epochs": 5, "seconds": 60})
    assert tcfg.epochs == 5 and tcfg.seconds == 60
    assert O.train_configs({})[0].seconds == TrainConfig().seconds == 120.0


def test_docs_options_page_is_generated_from_the_dataclasses():
    text = (ROOT / "docs" / "options.md").read_text()
    assert text == O.markdown(), (
        "docs/options.md is stale: python -m napari_temseg.core.config.options > docs/options.md"
    )
    for cls in OPTION_CLASSES:
        for name in O.derived(cls):
            assert f"`{cls.__name__}.{name}`" in text


@pytest.mark.gui
def test_docks_expose_every_option_with_the_same_default(make_napari_viewer):
    from napari_temseg._widgets.predict import PredictWidget
    from napari_temseg._widgets.train import TrainWidget

    viewer = make_napari_viewer()
    train, predict = TrainWidget(viewer), PredictWidget(viewer)
    for o in O.all_options(*O.TRAIN_CLASSES):
        assert getattr(train, o.name, None) is train.form.widgets[o.name], o.name
        assert train.form.value(o.name) == o.default, o.name
    assert train.configs() == (TrainConfig(), ModelConfig())
    slider = ("threshold", "min_confidence")  # one slider: binary threshold / K-class floor
    for o in O.all_options(*O.PREDICT_CLASSES):
        if o.name in slider:
            assert o.name not in predict.form.widgets
            continue
        assert getattr(predict, o.name) is predict.form.widgets[o.name], o.name
        assert predict.form.value(o.name) == o.default, o.name
    # the slider starts at the model's threshold (what threshold=None means elsewhere)
    assert predict.config() == PredictConfig(threshold=predict.threshold.value)


@pytest.mark.gui
def test_dock_shows_words_not_magic_numbers_and_hides_advanced(make_napari_viewer):
    from napari_temseg._widgets.train import TrainWidget

    train = TrainWidget(make_napari_viewer())
    assert train.epochs.native.text() == "no limit" and train.base_width.native.text() == "auto"
    train.form.set_value("seconds", None)
    train.epochs.value = 7
    assert train.train_config().seconds is None and train.train_config().epochs == 7
    assert train.seconds.native.text() == "no limit"
    assert train.form.advanced.native.isHidden() and train.form.toggle.value is False
    advanced = {o.name for o in O.all_options(*O.TRAIN_CLASSES) if o.advanced}
    assert "weight_decay" in advanced and train.weight_decay.parent is not None
    train.form.toggle.value = True
    assert not train.form.advanced.native.isHidden()
    train.weight_decay.value = 0.0
    train.optimizer.value = "adam"
    assert train.train_config().weight_decay == 0.0 and train.train_config().optimizer == "adam"
