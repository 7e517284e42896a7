"""`shardrun merge [--plan PLAN] INPUT...`: a CI matrix's partition jobs made into one run."""

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
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            metavar="PATH",
            help="The plan `build --partitions` wrote (image.plan.json): every report "
            "must be of it, a partition it gave no shards needs no folder, its reused "
            "shards count as passed, and the passes go into .shardrun/results.json.",
        ),
    ] = None,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One summary, junit.xml, report.json, exit code and timings for all partitions;
    exit 4 if one never reported, reported twice, or belongs to another plan."""
    from shardrun.model.text import counted
    from shardrun.run.merge_job import MergeRequest
    from shardrun.run.merge_job import merge as merge_stage
    from shardrun.ui.console import pick_view
    from shardrun.ui.summary import print_outcome

    merged = merge_stage(MergeRequest(tuple(inputs), Path.cwd(), output, plan))
    print_outcome(pick_view(plain)[1], merged.summary, list(merged.reports))
    for note in merged.notes:
        print(f"shardrun: {note}", file=sys.stderr)
    reused = f" and {counted(merged.reused, 'reused shard')}" if merged.reused else ""
    record = ""
    if merged.record is not None:
        record = f"; {counted(merged.recorded, 'pass', 'passes')} recorded in {merged.record}"
    print(
        f"shardrun: merged {counted(merged.partitions, 'partition')}{reused}; "
        f"timings in {merged.timings}{record}",
        file=sys.stderr,
    )
    raise typer.Exit(merged.summary.exit_code)
