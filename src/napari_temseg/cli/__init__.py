"""The ``temseg`` command: one subcommand per user task (``temseg --help`` lists them all).

One module per command group, each exporting ``COMMANDS = [(add_parser, run), ...]``, gathered
in help order by ``_registry`` below (``train`` holds both train and demo); ``progress``
prints a core generator's Progress, ``options`` makes the config flags. Long operations
drive the same core generators as the docks and the console API. User errors
(TemsegError) and OS errors (read-only folder, disk full, permission denied...) are
printed as one line and exit with status 2, never as a traceback; a closed stdout pipe
(``temseg evaluate ... | head``) ends quietly with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..core.errors import TemsegError


def _registry() -> list[tuple[Callable, Callable]]:
    """(add-parser, run) pairs for every subcommand, in help order."""
    from . import (
        doctor,
        evaluate,
        export,
        learning_curve,
        measure,
        predict,
        recipes,
        suggest,
        train,
    )

    return [
        *doctor.COMMANDS,
        *train.COMMANDS,
        *predict.COMMANDS,
        *evaluate.COMMANDS,
        *measure.COMMANDS,
        *export.COMMANDS,
        *learning_curve.COMMANDS,
        *suggest.COMMANDS,
        *recipes.COMMANDS,
    ]


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    from ..version import __version__

    parser = argparse.ArgumentParser(
        prog="temseg",
        description="napari-temseg: train U-Nets on painted masks and segment "
        "TEM/SEM/FIB-SEM stacks.",
    )
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
        with _terminate_as_interrupt():
            rc = int(commands[args.command](args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return rc
    except BrokenPipeError:
        return _stdout_closed()
    except TemsegError as e:
        print(f"temseg {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"temseg {args.command}: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"temseg {args.command}: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill``, a cluster's time limit) ends a command like Ctrl-C does, so its
    clean-up runs (partial outputs and temporary files removed) instead of dying mid-write."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def os_error_line(e: OSError) -> str:
    """ "cannot VERB 'PATH': cause" for an OS error.

    A command may set ``e.temseg_verb`` ("read", "write"...) where it knows what it was
    doing; otherwise the verb is "access".
    """
    cause = e.strerror or str(e) or type(e).__name__
    if not e.filename:
        return cause
    verb = getattr(e, "temseg_verb", None) or "access"
    where = f"'{e.filename}'" + (f" -> '{e.filename2}'" if e.filename2 else "")
    return f"cannot {verb} {where}: {cause}"


def _stdout_closed() -> int:
    """The reader of our stdout went away (``| head``): stop quietly, as the Python docs
    advise for SIGPIPE - point stdout at devnull so the exit-time flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor
        pass
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
