"""Which front end a command gets: the live view on a terminal, plain lines anywhere else."""

from __future__ import annotations

import sys

from rich.console import Console

from shardrun.ui.live import LiveView
from shardrun.ui.plain import PlainView


def plain_console() -> Console:
    # No terminal: rich emits no escape codes; wide, so paths are not folded.
    return Console(force_terminal=False, no_color=True, width=160, highlight=False)


def pick_view(plain: bool) -> tuple[LiveView | PlainView, Console]:
    """The view for a run's events, and the console for what is printed after it."""
    if plain or not sys.stdout.isatty():
        return PlainView(sys.stdout), plain_console()
    console = Console()
    return LiveView(console), console


def table_console() -> Console:
    """For a command that prints one table."""
    return Console(highlight=False) if sys.stdout.isatty() else plain_console()
