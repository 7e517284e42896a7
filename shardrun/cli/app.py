"""The `shardrun` command: each command parses its options, builds one request, calls a
stage and maps the outcome to an exit code.

Each command imports what it uses when it runs: `--help` costs typer alone, `list` the
config and plan modules, and only the commands that talk to an engine pay for docker-py,
requests, anyio and rich (tests/host/test_imports.py).
"""

from __future__ import annotations

import os
import sys

import typer

from shardrun.cli import build, ci, listing, merge, past, repro, run, workers

app = typer.Typer(
    add_completion=True,  # typer's --install-completion / --show-completion
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Build Dockerfile.test once and run the shards of shards.toml concurrently.",
)
app.command()(run.run)
app.command()(build.build)
app.command()(workers.workers)
app.command()(repro.repro)
app.command()(past.runs)
app.command()(past.show)
app.command()(past.clean)
app.command("list")(listing.list_shards)
app.command()(merge.merge)
app.add_typer(ci.app, name="ci")


def main() -> None:
    from shardrun.engine.lazy_ssh import defer_ssh_transport

    defer_ssh_transport()
    try:
        app(prog_name="shardrun")  # also under `python -m shardrun`: completion keys on it
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    _exit(code)


def _exit(code: int) -> None:
    """Exit at once (state.files.exit_now), without importing the state folder's writer
    when this process never did: then it wrote no temp file to remove."""
    files = sys.modules.get("shardrun.state.files")
    if files is not None:
        files.exit_now(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
