"""Every user option, declared once.

The config dataclasses (:class:`ModelConfig`, :class:`TrainConfig`, :class:`PredictConfig`,
:class:`SuggestConfig`) are frozen and validated; each field is declared with
:func:`~.choices.opt` (default, help, label, choices, range). :mod:`.options` turns the fields
into :class:`Option` records from which the CLI flags, the dock forms, the console keywords and
docs/options.md are generated, and builds configs from names for every front end.
:mod:`.recipes` holds the seed papers' settings, :mod:`.classes` the class table of a
K-class segmentation and the label conventions.
"""

from .choices import ConfigError
from .classes import ClassTable
from .model import InputSpec, ModelConfig, from_dict, to_dict
from .options import Option, all_options, build, predict_config, train_configs
from .predict import PredictConfig
from .recipes import describe, with_recipe
from .suggest import SuggestConfig
from .train import TrainConfig

__all__ = [
    "ClassTable",
    "ConfigError",
    "InputSpec",
    "ModelConfig",
    "Option",
    "PredictConfig",
    "SuggestConfig",
    "TrainConfig",
    "all_options",
    "build",
    "describe",
    "from_dict",
    "predict_config",
    "to_dict",
    "train_configs",
    "with_recipe",
]
