"""`shardrun runs`, `show` and `clean`: past runs, and tidying up after them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Annotated, BinaryIO

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import (
    ConfigOpt,
    DebugOpt,
    WorkerOpt,
    complete_runs_and_shards,
    complete_shards,
)
from shardrun.model.errors import ConfigError

_PIECE = 1 << 16  # bytes of a log line shown at most as one line


@handles_errors
def runs(config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """List past runs, newest first: ID, when, image, counts, exit code."""
    from shardrun.config.load import load
    from shardrun.report.history import past_runs
    from shardrun.state.layout import state_dir

    rows = past_runs(state_dir(load(config).root))
    if not rows:
        print("no runs recorded yet; `shardrun run` makes one")
        return
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.started)) if row.started else "?"
        image = row.image.removeprefix("sha256:")[:12] or "-"
        code = "-" if row.exit_code is None else row.exit_code
        print(f"{row.run_id}  {when}  image {image}  exit {code}  {row.counts}")


@handles_errors
def show(
    run_or_shard: Annotated[
        str | None, typer.Argument(metavar="[RUN]", autocompletion=complete_runs_and_shards)
    ] = None,
    shard: Annotated[
        str | None, typer.Argument(metavar="[SHARD]", autocompletion=complete_shards)
    ] = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print a run's summary again (default: the latest), or one shard's log."""
    from shardrun.config.load import load
    from shardrun.report import history, shown_run
    from shardrun.state import foreign, layout

    state = layout.state_dir(load(config).root)
    run_id, shard_name = history.resolve_show(state, run_or_shard, shard)
    past = history.load(state, run_id)
    if shard_name is None:
        # As the run's end printed it, from its report: a table on a terminal, plain
        # lines elsewhere (not summary.md, which is Markdown for a CI page).
        from shardrun.ui.console import table_console
        from shardrun.ui.summary import print_summary

        summary, recorded = shown_run.run_summary(past)
        print_summary(table_console(), summary, shown_run.report_files(past), recorded)
        return
    path = history.shard_log(past, shard_name)
    try:
        # Checked again by the open that reads: the file may have changed since.
        fd = foreign.open_regular(path, within=past.folder)
    except foreign.Refused as exc:
        raise ConfigError(f"{path} is not one to show ({exc})") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: {exc.strerror}; the run's folder may have been cleaned"
        ) from None
    try:
        with open(fd, "rb") as f:
            _echo(f)
    except OSError as exc:  # EIO and the like, halfway: what was shown stays shown
        raise ConfigError(f"{path} cannot be read ({exc.strerror})") from None


def _echo(log: BinaryIO) -> None:
    """A shard's log as a test wrote it, but shown as data: each line with its
    unprintable characters spelled out, and on GitHub Actions fenced so that no line of it
    runs as a workflow command. Read in bounded pieces: a line can be huge."""
    from shardrun.model.text import visible_lines
    from shardrun.report.github import fenced

    pieces = iter(lambda: log.readline(_PIECE), b"")
    lines: Iterator[str] = (
        line for piece in pieces for line in visible_lines(piece.decode(errors="replace"))
    )
    if os.environ.get("GITHUB_ACTIONS") == "true":
        lines = fenced(lines)
    for line in lines:
        print(line)


@handles_errors
def clean(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Remove runs and cache files unused for this long (e.g. 7d, 12h).",
        ),
    ] = "7d",
    containers: Annotated[
        bool,
        typer.Option(
            "--containers",
            help="Also remove the containers with shardrun's labels, of any project, whose "
            "runner is gone (a live run's or repro's stay).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="With --containers: live runs' containers too, and kept ones however young.",
        ),
    ] = False,
    config: ConfigOpt = None,
    worker: WorkerOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Remove old runs and unused cache files, the containers kept by --keep-failed, and
    the content tags of images no remaining run used. A live run is never touched."""
    from shardrun.cli import engines
    from shardrun.config.load import load
    from shardrun.config.workers import parse_worker_option
    from shardrun.model.text import counted
    from shardrun.model.values import parse_duration
    from shardrun.run import inventory

    cfg = load(config)
    age = parse_duration(older_than, "--older-than")
    given = [parse_worker_option(w) for w in worker or ()]
    done = inventory.clean(cfg, age, containers, force, given, engines.connect)
    print(
        f"removed {counted(done.files.runs, 'run')} and "
        f"{counted(done.files.cache_files, 'cache file')} ({done.files.freed / 1e6:.1f} MB)"
        + (f", forgot {counted(done.files.passes, 'recorded pass')}" if done.files.passes else "")
    )
    for row in done.rows:
        if row.error:
            print(f"{row.worker}: {row.error}")
            continue
        what = "container" if containers else "kept container"
        labels = " with shardrun's labels" if containers else ""
        spared = (
            f" ({row.swept.spared} left: their run is live, or kept recently; --force removes them)"
            if row.swept.spared
            else ""
        )
        print(
            f"{row.worker}: removed {counted(row.swept.removed, what)}{labels}{spared}, "
            f"{counted(row.tags, 'unused image tag')} ({row.freed / 1e6:.1f} MB)"
        )
