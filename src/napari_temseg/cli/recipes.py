"""`temseg recipes`: the seed papers' settings, each usable as `temseg train --recipe NAME`."""

from __future__ import annotations


def _add_recipes(sub) -> None:
    sub.add_parser(
        "recipes",
        help="list the seed papers' settings (use one with train --recipe NAME)",
        description="The seed papers' settings. `temseg train ... --recipe NAME` trains with "
        "one; any option you also give overrides it (docs/seeds.md).",
    )


def _cmd_recipes(args) -> int:
    from ..core.config.recipes import describe

    print(describe())
    return 0


COMMANDS: list = [(_add_recipes, _cmd_recipes)]

__all__ = ["COMMANDS"]
