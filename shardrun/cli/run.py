"""`shardrun run`: the main job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import (
    BuildArgOpt,
    BuilderOpt,
    CacheFromOpt,
    ConfigOpt,
    DebugOpt,
    PlainOpt,
    PlanOpt,
    ShardOpt,
    WorkerOpt,
    partition_option,
    run_option,
)
from shardrun.model.matrix import INDEX_NAMES


@handles_errors
def run(
    config: ConfigOpt = None,
    shard: ShardOpt = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            metavar="N",
            help="At most N containers at once; "
            "also the slots of a worker that declares none (default: its CPU count).",
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option(
            min=0, metavar="N", help="Run a failed or timed-out shard again up to N times."
        ),
    ] = 0,
    build_arg: BuildArgOpt = None,
    builder: BuilderOpt = None,
    cache_from: CacheFromOpt = None,
    worker: WorkerOpt = None,
    require_all_workers: Annotated[
        bool,
        typer.Option(
            "--require-all-workers",
            help="Exit 4 if any worker is lost or "
            "unreachable (as `required = true` does for one [[worker]]).",
        ),
    ] = False,
    failed: Annotated[
        bool,
        typer.Option(
            "--failed",
            help="Run only the shards that failed, timed out or "
            "errored in the latest run (or --run).",
        ),
    ] = False,
    run_id: Annotated[str | None, run_option("The run --failed reads.")] = None,
    keep_failed: Annotated[
        bool,
        typer.Option(
            "--keep-failed",
            help="Leave the stopped containers of failed "
            "shards, to look inside; `shardrun clean` removes them.",
        ),
    ] = False,
    junit_out: Annotated[
        Path | None, typer.Option("--junit", metavar="PATH", help="Also write junit.xml here.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", metavar="PATH", help="Also write report.json here.")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", metavar="PATH", help="Also write report.html here.")
    ] = None,
    fail_fast: Annotated[
        bool,
        typer.Option(
            "--fail-fast",
            help="Once a shard fails its tests, start no "
            "queued shard (they are SKIPPED); running ones finish.",
        ),
    ] = False,
    no_reuse: Annotated[
        bool,
        typer.Option(
            "--no-reuse",
            help="Run every shard, also those with `reuse = true` that passed before on "
            "the same content.",
        ),
    ] = False,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="FILE|IMAGE",
            help="Run this image file (written by `shardrun build --output`), or this "
            "image ID or tag on the build engine, instead of building.",
        ),
    ] = None,
    partition_text: Annotated[
        str | None,
        partition_option(
            "Run partition K of N of the plan (beside --image, or --plan); default: "
            f"from {INDEX_NAMES}."
        ),
    ] = None,
    plan_path: PlanOpt = None,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build the image once, run the shards, print a summary; exit 0 if all passed."""
    from shardrun.cli import engines
    from shardrun.config.load import load, with_overrides
    from shardrun.config.workers import parse_worker_option
    from shardrun.run import job
    from shardrun.ui.console import pick_view
    from shardrun.ui.summary import print_outcome

    options = job.RunOptions(
        config=with_overrides(load(config), build_arg or (), builder, cache_from or ()),
        patterns=tuple(shard or ()),
        jobs=jobs,
        retries=retries,
        workers=tuple(parse_worker_option(w) for w in worker or ()),
        require_all_workers=require_all_workers,
        failed=failed,
        past_run=run_id,
        keep_failed=keep_failed,
        fail_fast=fail_fast,
        reuse=not no_reuse,
        image=image,
        partition=partition_text,
        plan=plan_path,
        junit=junit_out,
        json=json_out,
        html=html_out,
        connect=engines.connect,
    )
    view, console = pick_view(plain)
    outcome = job.run(options, view)
    if outcome.note:
        print(f"shardrun: {outcome.note}")
    if outcome.summary is None:
        raise typer.Exit(0)
    print_outcome(console, outcome.summary, list(outcome.reports))
    if outcome.summary.interrupted:
        print("shardrun: interrupted", file=sys.stderr)
    raise typer.Exit(outcome.summary.exit_code)
