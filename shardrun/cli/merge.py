"""`shardrun merge INPUT...`: a CI matrix's partition jobs made into one run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import DebugOpt, PlainOpt


@handles_errors
def merge(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT...",
            help="The partition jobs' run folders or "
            "report.json files, as downloaded (folders are searched; globs work).",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="DIR",
            help="Write the merged run here (default: a "
            "new run under .shardrun/runs/ of this folder).",
        ),
    ] = None,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One summary, junit.xml, report.json, exit code and timings for all partitions;
    exit 4 if one never reported, reported twice, or belongs to another plan."""
    from shardrun.report import merge as merging
    from shardrun.report.write import REPORTS
    from shardrun.run.record import save_reports, save_times
    from shardrun.run.request import new_run_id
    from shardrun.state import layout
    from shardrun.ui.console import pick_view
    from shardrun.ui.summary import print_outcome

    partitions = merging.read(merging.find(inputs))
    run_id = f"merged-{new_run_id()}"
    state = layout.state_dir(Path.cwd())
    run_dir = output or layout.run_dir(state, run_id)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    summary = merging.merge(partitions, run_id, run_dir)
    save_reports(state, run_dir, summary, latest=output is None)
    # The next build job's plan starts from these: cache or upload .shardrun/timings.json.
    path = layout.timings(state)
    save_times(path, summary, summary.shards, lambda name: True)
    print_outcome(pick_view(plain)[1], summary, [run_dir / name for name in REPORTS])
    print(f"shardrun: merged {len(partitions)} partitions; timings in {path}", file=sys.stderr)
    raise typer.Exit(summary.exit_code)
