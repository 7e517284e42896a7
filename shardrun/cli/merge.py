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
    from shardrun.model.text import counted
    from shardrun.run.merge_job import MergeRequest
    from shardrun.run.merge_job import merge as merge_stage
    from shardrun.ui.console import pick_view
    from shardrun.ui.summary import print_outcome

    merged = merge_stage(MergeRequest(tuple(inputs), Path.cwd(), output))
    print_outcome(pick_view(plain)[1], merged.summary, list(merged.reports))
    for note in merged.notes:
        print(f"shardrun: {note}", file=sys.stderr)
    print(
        f"shardrun: merged {counted(merged.partitions, 'partition')}; timings in {merged.timings}",
        file=sys.stderr,
    )
    raise typer.Exit(merged.summary.exit_code)
