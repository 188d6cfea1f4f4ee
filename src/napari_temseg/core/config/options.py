"""The options of the config dataclasses as records the front ends are generated from.

``options(TrainConfig)`` lists one :class:`Option` per user-settable field (name, value
type, default, choices, help, range, basic or advanced), in declaration order. The CLI
(``cli/options.py``), the docks (``_widgets/form.py``) and the console (``api.py``) all
build their flags, widgets and keyword arguments from these records, and turn what the
user set back into configs with :func:`build`; ``docs/options.md`` is written from them
(:func:`markdown`). Fields marked ``derived`` (set from the data) are not options.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .choices import ConfigError
from .model import ModelConfig
from .predict import PredictConfig
from .recipes import with_recipe
from .suggest import PREDICT_OPTIONS, SuggestConfig
from .train import TrainConfig

TRAIN_CLASSES = (TrainConfig, ModelConfig)
PREDICT_CLASSES = (PredictConfig,)
SUGGEST_CLASSES = (SuggestConfig,)


@dataclass(frozen=True)
class Option:
    """One user option: a field of a config dataclass and its description."""

    name: str
    owner: type
    kind: type  # int, float, bool or str
    default: Any
    help: str
    label: str
    choices: tuple | None = None
    open_choices: bool = False
    none: str | None = None  # what None means, when None is allowed ("auto", "no limit")
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    advanced: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def optional(self) -> bool:
        return self.none is not None

    def text(self, value: Any) -> str:
        """How ``value`` is written for people (help texts, docs)."""
        if value is None:
            return self.none or "none"
        if isinstance(value, bool):
            return "on" if value else "off"
        return str(value)

    def parse(self, text: str) -> Any:
        """A value typed by a user (CLI): numbers, the word for None, a choice."""
        if self.optional and text.strip().lower() in {"none", "auto", self.none.lower()}:
            return None
        try:
            value = self.kind(text)
        except ValueError:
            raise ConfigError(f"{self.flag} needs a {self.kind.__name__}, got '{text}'") from None
        if self.choices and not self.open_choices and value not in self.choices:
            raise ConfigError(
                f"{self.flag} must be one of {', '.join(map(str, self.choices))}; got '{text}'"
            )
        return value


def _kind(hint: Any) -> tuple[type, bool]:
    """(base type, None allowed) of a field's type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args:
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def options(cls: type) -> list[Option]:
    """The user options of a config dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        if "help" not in m or m.get("derived"):
            continue
        kind, _ = _kind(hints[f.name])
        out.append(
            Option(
                name=f.name,
                owner=cls,
                kind=kind,
                default=f.default,
                help=m["help"],
                label=m.get("label") or f.name.replace("_", " "),
                choices=m.get("choices"),
                open_choices=m.get("open_choices", False),
                none=m.get("none"),
                lo=m.get("lo"),
                hi=m.get("hi"),
                step=m.get("step"),
                advanced=m.get("advanced", False),
            )
        )
    return out


def derived(cls: type) -> dict[str, str]:
    """Fields that are set from the data, not by users: {name: reason}."""
    return {
        f.name: f.metadata["derived"] for f in dataclasses.fields(cls) if f.metadata.get("derived")
    }


def all_options(*classes: type) -> list[Option]:
    return [o for cls in classes for o in options(cls)]


def check_names(values: dict, classes: tuple, what: str) -> None:
    """Refuse unknown option names, suggesting the closest valid one."""
    valid = [o.name for o in all_options(*classes)]
    for name in values:
        if name not in valid:
            near = difflib.get_close_matches(name, valid, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise ConfigError(
                f"unknown {what} option '{name}': {hint}valid options: {', '.join(valid)}"
            )


def time_limits(given: dict) -> dict:
    """Epochs without a time budget mean: train exactly that many epochs (no 120 s cut-off)."""
    if given.get("epochs") is not None and "seconds" not in given:
        return {**given, "seconds": None}
    return given


def build(cls: type, values: dict) -> Any:
    """``cls(**values)`` for the values that belong to ``cls`` (others are ignored)."""
    names = {o.name for o in options(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def train_configs(values: dict) -> tuple[TrainConfig, ModelConfig]:
    """(TrainConfig, ModelConfig) from option values given by a front end (missing = default)."""
    check_names(values, TRAIN_CLASSES, "training")
    values = time_limits(with_recipe(values))
    return build(TrainConfig, values), build(ModelConfig, values)


def predict_config(values: dict) -> PredictConfig:
    check_names(values, PREDICT_CLASSES, "prediction")
    return build(PredictConfig, values)


def check_suggest_names(values: dict) -> None:
    """Refuse option names a suggestion does not take: those of neither SuggestConfig nor
    PredictConfig, and the prediction options other than PREDICT_OPTIONS."""
    check_names(values, (SuggestConfig, *PREDICT_CLASSES), "suggestion")
    bad = [k for k in values if k in PredictConfig.__dataclass_fields__]
    bad = [k for k in bad if k not in PREDICT_OPTIONS]
    if bad:
        raise InputError(
            f"'{bad[0]}' does not apply here: the prediction options are {PREDICT_OPTIONS}"
        )


def markdown() -> str:
    """docs/options.md: every option of every front end, from the dataclasses."""
    lines = [
        "# Options",
        "",
        "Generated from `core/config/model.py` by `python -m napari_temseg.core.config.options`"
        " (a test checks it is current). Every option has this name in `api.train` / "
        "`api.predict`, the flag `--name-with-dashes` in `temseg train` / `temseg predict`, "
        "and a widget of the same label in the Train / Predict dock (*advanced* ones in the "
        "dock's Advanced section).",
        "",
    ]
    for title, classes in (
        ("Training (`temseg train`, `api.train`, Train dock)", TRAIN_CLASSES),
        ("Prediction (`temseg predict`, `api.predict`, Predict dock)", PREDICT_CLASSES),
        ("Suggestions (`temseg suggest`, `api.suggest_regions`, Annotate dock)", SUGGEST_CLASSES),
    ):
        lines += [
            f"## {title}",
            "",
            "| option | CLI flag | default | choices / range | what it does |",
            "|---|---|---|---|---|",
        ]
        for o in all_options(*classes):
            rng = (
                ", ".join(map(str, o.choices)) + (", ..." if o.open_choices else "")
                if o.choices
                else (
                    f"{o.kind(o.lo)} .. {o.kind(o.hi)}"
                    if o.lo is not None and o.hi is not None
                    else ""
                )
            )
            adv = " *(advanced)*" if o.advanced else ""
            flag = f"`{o.flag}` / `--no-{o.flag[2:]}`" if o.kind is bool else f"`{o.flag}`"
            lines.append(f"| `{o.name}` | {flag} | {o.text(o.default)} | {rng} | {o.help}{adv} |")
        lines.append("")
    lines += ["## Not options (set from the data)", "", "| field | why |", "|---|---|"]
    for cls in (ModelConfig, TrainConfig, PredictConfig):
        lines += [f"| `{cls.__name__}.{k}` | {v} |" for k, v in derived(cls).items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - regenerates docs/options.md
    print(markdown(), end="")
