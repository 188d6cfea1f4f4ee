"""The ``temseg`` command: doctor, demo, train, predict, evaluate.

Each subcommand is a pair ``(add(subparsers), run(args) -> int)``. Long operations drive the same core generators as
the GUI and print their Progress. User errors (TemsegError) are printed as one
line and exit with status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .core.errors import TemsegError


class _Bar:
    """A one-line progress printer for core Progress records (no dependencies)."""

    def __init__(self, quiet: bool = False, every: float = 1.0):
        import time

        self.quiet, self.every, self._last, self._time = quiet, every, 0.0, time.monotonic

    def __call__(self, p) -> None:
        now = self._time()
        if self.quiet or (now - self._last < self.every and p.step != p.total):
            return
        self._last = now
        frac = p.fraction
        bar = ""
        if frac is not None:
            n = int(frac * 24)
            bar = "[" + "#" * n + "." * (24 - n) + f"] {100 * frac:5.1f}% "
        end = "\n" if not sys.stderr.isatty() else "\r"
        print(f"{bar}{p.line()}"[:160].ljust(100 if end == "\r" else 0), end=end, file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.quiet and sys.stderr.isatty():
            print(file=sys.stderr)


def run_with_bar(gen, quiet: bool = False):
    """Drive a core progress generator to its result, printing a progress line."""
    from .core.progress import run

    bar = _Bar(quiet=quiet)
    try:
        return run(gen, bar)
    finally:
        bar.close()


# --- doctor ---------------------------------------------------------------------------------
def _add_doctor(sub) -> None:
    sub.add_parser("doctor", help="print versions, GPU availability and how to get a CUDA build")


def _cmd_doctor(args) -> int:
    from .doctor import report

    print(report())
    return 0


def _registry() -> list[tuple[Callable, Callable]]:
    """(add-parser, run) pairs for every subcommand, in help order.

    Subcommands live in ``_cli_train.py`` (demo, train) and ``_cli_predict.py``
    (predict, evaluate); each exports ``COMMANDS = [(add, run), ...]``.
    """
    from . import _cli_predict, _cli_train

    return [(_add_doctor, _cmd_doctor), *_cli_train.COMMANDS, *_cli_predict.COMMANDS]


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="temseg",
        description="napari-temseg: train U-Nets on painted masks and segment TEM/SEM/FIB-SEM stacks.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"napari-temseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = {}
    for add, cmd in _registry():
        before = set(sub.choices)
        add(sub)
        for name in set(sub.choices) - before:
            commands[name] = cmd
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    try:
        return int(commands[args.command](args) or 0)
    except TemsegError as e:
        print(f"temseg {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"temseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
