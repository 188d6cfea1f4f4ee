"""The architecture registry: every network name with its builder and its properties.

One :class:`Arch` entry per architecture is the only place a name is spelled out: the
model choices of the CLI, the docks and docs/options.md, the checks of :class:`ModelConfig`,
the dispatch of ``build_model``, the model file header checks and the bioimage.io packager
all read :data:`ARCHS`. A name that is not an entry is a segmentation-models-pytorch
architecture (``Unet``, ``FPN``...; entry :data:`SMP`), checked against smp's own list when
it is built. Importing this module is cheap (no torch): the builders are ``"module:function"``
names inside core/nets/, imported only when a network is built.

Adding an architecture is one entry:

1. Write its builder, ``build(cfg) -> torch.nn.Module`` (logits ``(N, cfg.classes, H, W)``
   from ``(N, cfg.in_channels, H, W)``), in a module of core/nets/. That module may import
   torch at its top and define its classes there: only ``build_model`` imports it.
   ``cfg`` is the resolved :class:`ModelConfig` (``base_width`` already set to the
   entry's default when the user left it on auto).
2. Add an ``Arch(...)`` to ``_ENTRIES`` below (:data:`ARCHS` maps the names to them; the
   order is the order of the choices). The fields (defaults in brackets):

   * ``name``, ``help``: the option value and one line saying what the network is.
   * ``builder``: ``"module:function"`` relative to this package; None: not built here.
   * ``native`` [True]: implemented in this package (never downloads anything).
   * ``offered`` [True]: listed in the model choices (CLI help, dock, docs/options.md).
   * ``base_width`` [None]: default width of the first level; None: no ``base_width``.
   * ``depth`` [False]: has the ``depth`` option (pooling levels; input multiple
     ``2 ** depth``); otherwise inputs are multiples of ``multiple`` [16].
   * ``norm`` ["batch"]: what ``norm_layer="auto"`` becomes, ``"by-classes"`` (instance
     norm for one output channel, batch norm for K classes) or None (no ``norm_layer``
     option: the network has batch norm or none).
   * ``encoder`` [False]: takes ``encoder`` / ``encoder_weights`` (pretrained weights).
   * ``sequence`` [False]: reads the (2k+1)-slice window as a sequence, so the model file
     header must store ``model.slices = 2 x context + 1`` (checked when a file is read).
   * ``fixed_shapes`` [True]: every weight's shape follows from the config, so a file's
     tensors are compared with a network built on torch's "meta" device before loading;
     False for buffers sized by training: the file's tensors are loaded as they are, so
     the module must accept their shapes (e.g. resize its buffers in
     ``_load_from_state_dict``).
   * ``export`` [all three]: the formats ``temseg export`` writes for it, of
     ``("torchscript", "onnx", "bioimageio")``; the others are refused with one line.
   * ``cite`` [None]: ``(reference, doi)`` of the paper, cited in bioimage.io packages.

   For example, a filter bank + tree ensemble with no encoder and variable-size buffers::

       Arch("pixel-classifier", "filter bank + random-forest pixel classifier",
            builder="classifier:build", multiple=1, norm=None, fixed_shapes=False,
            export=("torchscript", "onnx"))

Nothing else needs to change: choices, checks, dispatch, tile sizes, header checks and
export follow the entry. A model file's header stores the :class:`ModelConfig` fields (arch,
channels, classes, slices, widths, depth, norm layer, encoder); whatever else a network needs
to be rebuilt (a tree ensemble's split thresholds, a filter bank's sizes) travels as tensors in
the same file, so an entry never needs a new header field. (Tests that list every
architecture, e.g. tests/core/nets, may want a case for it.)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

EXPORT_FORMATS = ("torchscript", "onnx", "bioimageio")


@dataclass(frozen=True)
class Arch:
    """One architecture: its name, how to build it and what it accepts (module docstring)."""

    name: str
    help: str
    builder: str | None
    native: bool = True
    offered: bool = True
    base_width: int | None = None
    depth: bool = False
    multiple: int = 16
    norm: str | None = "batch"
    encoder: bool = False
    sequence: bool = False
    fixed_shapes: bool = True
    export: tuple[str, ...] = EXPORT_FORMATS
    cite: tuple[str, str] | None = None


_ZHANG_2018 = (
    "Zhang, Liu, Wang 2018: Road Extraction by Deep Residual U-Net. IEEE GRSL 15(5)",
    "10.1109/LGRS.2018.2802944",
)
_NOVIKOV_2018 = (
    "Novikov et al. 2018: Deep Sequential Segmentation of Organs in Volumetric "
    "Medical Scans. arXiv:1807.02437",
    "10.48550/arXiv.1807.02437",
)

IMPORTED_ARCH = "bioimage.io"  # ModelConfig.arch of a network loaded from a package
CLASSIFIER_ARCH = "pixel-classifier"  # trained by training/classifier.py, not by the loop

_ENTRIES = (
    Arch(
        "unet",
        "classic U-Net (Ronneberger et al. 2015): 2 x (3x3 conv + norm + ReLU) per level, "
        "2x2 max-pool, 2x2 transposed convolutions, skip concatenation",
        builder="unets:build_unet",
        base_width=32,
        depth=True,
    ),
    Arch(
        "small-unet",
        "the compact U-Net of the Keras/Kaggle recipe: 16-32-64-128 encoder, 256 bottleneck, "
        "3x3 stride-2 transposed convolutions (~2.2 M parameters)",
        builder="unets:build_small_unet",
        base_width=16,
        depth=True,
        norm="by-classes",
    ),
    Arch(
        "resunet",
        "Deep Residual U-Net (Zhang et al. 2018): pre-activation residual blocks, "
        "64/128/256 encoder with strided convolutions, 512 bridge",
        builder="unets:build_resunet",
        base_width=64,
        cite=_ZHANG_2018,
    ),
    Arch(
        "sensor3d",
        "Sensor3D (Novikov et al. 2019): a U-Net shared by the slices of a (2k+1)-slice "
        "window with bidirectional ConvLSTMs along the slices; segments the centre slice",
        builder="sensor3d:build",
        base_width=16,
        sequence=True,
        cite=_NOVIKOV_2018,
    ),
    Arch(
        CLASSIFIER_ARCH,
        "ilastik-like pixel classifier: a filter bank (Gaussian, LoG, gradient, DoG, "
        "structure tensor, Hessian at 0.7-10 px) and extremely randomised trees; trains in "
        "seconds from strokes",
        builder="classifier.module:build",
        multiple=1,
        norm=None,
        fixed_shapes=False,
        export=(),
    ),
    Arch(
        IMPORTED_ARCH,
        "a network imported from a bioimage.io package (TorchScript or ONNX); its "
        "encoder field names the weights format",
        builder=None,
        native=False,
        offered=False,
        multiple=32,
        norm=None,
        encoder=True,
    ),
)
ARCHS: dict[str, Arch] = {a.name: a for a in _ENTRIES}

# Every other name: a segmentation-models-pytorch architecture with an encoder.
SMP = Arch(
    "smp",
    "a segmentation-models-pytorch architecture (Unet, FPN, ...) with an encoder",
    builder="build:build_smp",
    native=False,
    offered=False,
    multiple=32,
    norm=None,
    encoder=True,
)
SMP_ARCHS = ("Unet", "UnetPlusPlus", "FPN", "Linknet", "DeepLabV3Plus")  # offered in the dock
ENCODERS = ("resnet18", "resnet34", "mobilenet_v2", "efficientnet-b0")  # offered in the dock
DEFAULT_SMP_ENCODER = "resnet18"  # when an smp architecture is picked without one
# Default network when the user picks nothing; chosen with benchmarks/bench_models.py
# (docs/experiments/, "Model choice"): best Dice within a CPU minute, fast on GPU.
DEFAULT_ARCH = "small-unet"
DEFAULT_ENCODER: str | None = None


def arch_of(name: str) -> Arch:
    """The entry of ``name``; :data:`SMP` for any name that is not an entry."""
    return ARCHS.get(name, SMP)


def native_archs() -> tuple[str, ...]:
    """The offered architectures implemented in this package, in registry order."""
    return tuple(a.name for a in ARCHS.values() if a.native and a.offered)


def archs_with(prop: str) -> tuple[str, ...]:
    """The offered entries whose property ``prop`` is set, e.g. ``archs_with("depth")``."""
    return tuple(a.name for a in ARCHS.values() if a.offered and getattr(a, prop))


def model_choices() -> tuple[str, ...]:
    """The ``arch`` values offered in the CLI help, the Train dock and docs/options.md."""
    return native_archs() + SMP_ARCHS


def not_built(name: str) -> ConfigError:
    """The error for an entry without a builder."""
    return ConfigError(
        f"'{name}' networks are not built from a config: load them with "
        f"load_any_model, or train one of {list(native_archs())}"
    )


__all__ = [
    "ARCHS",
    "Arch",
    "DEFAULT_ARCH",
    "DEFAULT_ENCODER",
    "DEFAULT_SMP_ENCODER",
    "ENCODERS",
    "EXPORT_FORMATS",
    "IMPORTED_ARCH",
    "SMP",
    "SMP_ARCHS",
    "arch_of",
    "archs_with",
    "model_choices",
    "native_archs",
    "not_built",
]
