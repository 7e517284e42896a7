"""`shardrun run`: the main job."""

from __future__ import annotations

import functools
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import (
    BuildArgOpt,
    BuilderOpt,
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
    from shardrun.config.load import load, with_overrides
    from shardrun.config.workers import check_slots, chosen, parse_worker_option
    from shardrun.plan import partition
    from shardrun.plan.make import planned
    from shardrun.plan.rerun import only_failed
    from shardrun.report import history
    from shardrun.report.write import REPORTS, copy_report
    from shardrun.run.request import RunRequest, read_secrets
    from shardrun.state import layout
    from shardrun.ui.console import pick_view
    from shardrun.ui.summary import print_outcome

    check_slots(jobs, f"--jobs {jobs}")  # each is also a worker's slots: the same bound
    cfg = with_overrides(load(config), build_arg or (), builder)
    image_path, image_ref = _file_or_image(image)
    share = partition.for_job(cfg, image_path, plan_path, partition_text)
    shards = tuple(planned(cfg, shard)) if share is None else share.shards
    replan = None
    if share is None and (failed or run_id):
        past, shards = only_failed(history.load(layout.state_dir(cfg.root), run_id), shards)
        if not shards:
            print(f"shardrun: run {past} had no failed shards; nothing to run")
            raise typer.Exit(0)
    elif share is None and any(spec.per_slot for spec in cfg.shards):
        replan = functools.partial(planned, cfg, shard)  # count = "slots": once slots are known
    given = tuple(parse_worker_option(w) for w in worker or ())
    request = RunRequest(
        config=cfg,
        shards=shards,
        workers=chosen(cfg, given, require_all_workers),
        jobs=jobs,
        retries=retries,
        fail_fast=fail_fast,
        keep_failed=keep_failed,
        replan=replan,
        secrets=read_secrets(shards, os.environ),
        image_file=image_path,
        image_ref=image_ref,
        expected_image=share.plan.image_id if share and image else None,
        partition={**share.report_entry, "machine": socket.gethostname()} if share else None,
    )
    view, console = pick_view(plain)
    if share is not None and not shards:
        from shardrun.run.record import record_empty

        # Its run is recorded all the same: the merge must tell it from a lost job.
        print(
            f"shardrun: partition {share.index}/{share.plan.total} of {share.path} has "
            "no shards (the plan has fewer than its partitions); nothing to run"
        )
        summary = record_empty(request, share.plan.image_id)
    else:
        from shardrun.run import workflow
        from shardrun.run.drive import run_under

        leftovers = (
            f"containers labelled shardrun.run={request.run_id} may be left on the "
            "workers; its watchdog, or the next shardrun command there, removes them"
        )
        summary = run_under(view, functools.partial(workflow.run, request), leftovers)
    reports = [request.run_dir / name for name in REPORTS]
    for name, wanted in (
        (layout.JUNIT_XML, junit_out),
        (layout.REPORT_JSON, json_out),
        (layout.REPORT_HTML, html_out),
    ):
        if wanted is not None:
            reports.append(copy_report(request.run_dir / name, wanted))
    print_outcome(console, summary, reports)
    if summary.interrupted:
        print("shardrun: interrupted", file=sys.stderr)
    raise typer.Exit(summary.exit_code)


def _file_or_image(given: str | None) -> tuple[Path | None, str | None]:
    """`--image`: a file when one is there or the name says it is an image file (so a
    missing one is named as a file), else an image ID or tag on the build engine."""
    from shardrun.model.transit import IMAGE_FILE_SUFFIXES

    if given is None:
        return None, None
    path = Path(given)
    # Anything there is a file to read (a FIFO too: its reader refuses it in one line).
    if os.path.lexists(path) or path.name.endswith(tuple(IMAGE_FILE_SUFFIXES)):
        return path, None
    return None, given
