"""The one error handler: expected errors are one line and their exit code, an interrupt is
130, anything else is an internal error whose traceback goes to a crash log."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, ParamSpec, TypeVar

import typer

from shardrun.model.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, Interrupted, ShardrunError

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool its pipe killed

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int) -> NoReturn:
    print(f"shardrun: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        debug = kwargs.get("debug", False)
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BaseException as exc:
            exc = _unwrap(exc)
            if isinstance(exc, BrokenPipeError):
                # The reader of our output is gone (`shardrun runs | head`): stop quietly,
                # as a tool killed by SIGPIPE would, with the shell's code for that.
                _silence_stdout()
                raise typer.Exit(EXIT_BROKEN_PIPE) from None
            if debug:
                traceback.print_exception(exc)
            if isinstance(exc, ShardrunError):
                fail(str(exc), exc.exit_code)
            if isinstance(exc, (KeyboardInterrupt, Interrupted)):
                print("shardrun: interrupted", file=sys.stderr)
                raise typer.Exit(EXIT_INTERRUPTED) from None
            if isinstance(exc, typer.Exit):
                raise exc from None
            log = _write_crash_log(exc)
            fail(
                f"internal error: {exc!r}; the traceback is in {log}; please report it",
                EXIT_INTERNAL,
            )

    return wrapper


def _silence_stdout() -> None:
    # Whatever is still buffered for the closed pipe would fail again at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _write_crash_log(exc: BaseException) -> str:
    """Keep the traceback of an unexpected error where the user can attach it to a report."""
    path = Path(tempfile.gettempdir()) / f"shardrun-crash-{os.getpid()}.log"
    with open(path, "w") as out:
        traceback.print_exception(exc, file=out)
    return str(path)


def _unwrap(exc: BaseException) -> BaseException:
    """anyio task groups wrap what their tasks raise; the user needs the error itself.

    Several expected errors at once (two engines unreachable, say) show the first.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves = _leaves(exc)
    expected = [e for e in leaves if isinstance(e, (ShardrunError, KeyboardInterrupt, Interrupted))]
    return expected[0] if len(expected) == len(leaves) else exc


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
