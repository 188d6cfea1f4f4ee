"""argparse flags generated from the config options (``core/config/options.py``).

Every option becomes ``--name-with-dashes`` (booleans: ``--name`` / ``--no-name``). The
flags default to "not given" (``argparse.SUPPRESS``), so the configs are built from what
the user typed plus the dataclass defaults: one default per option, never a second copy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..core.config.choices import ConfigError
from ..core.config.options import Option, all_options


def _parser(o: Option) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return o.parse(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = o.kind.__name__
    return parse


def _help(o: Option) -> str:
    text = o.help
    if o.choices and o.open_choices:
        text += f"; e.g. {', '.join(map(str, o.choices))}"
    return f"{text} (default: {o.text(o.default)})".replace("%", "%%")


def add_option_flags(
    parser: argparse.ArgumentParser,
    classes: tuple,
    title: str,
    short: dict | None = None,
    only: tuple | None = None,
) -> None:
    """Add a flag for every option of ``classes``; advanced ones in their own group.
    ``short``: extra short flags, {option name: "-x"}; ``only``: just these options."""
    short = short or {}
    groups = {
        False: parser.add_argument_group(title),
        True: parser.add_argument_group(f"{title} (advanced)"),
    }
    for o in all_options(*classes):
        if only is not None and o.name not in only:
            continue
        g = groups[o.advanced]
        if o.kind is bool:
            g.add_argument(
                o.flag,
                dest=o.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=_help(o),
            )
        else:
            closed = o.choices and not o.open_choices
            metavar = "{" + ",".join(map(str, o.choices)) + "}" if closed else o.name.upper()
            g.add_argument(
                *([short[o.name]] if o.name in short else []),
                o.flag,
                dest=o.name,
                type=_parser(o),
                default=argparse.SUPPRESS,
                metavar=metavar,
                help=_help(o),
            )


def given(args: argparse.Namespace, classes: tuple) -> dict:
    """The options the user typed on the command line: {name: value}."""
    return {o.name: getattr(args, o.name) for o in all_options(*classes) if hasattr(args, o.name)}


__all__ = ["add_option_flags", "given"]
