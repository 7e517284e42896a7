"""`shardrun run`, `build` and `list`: the main job, the image alone, and the plan."""

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
    ShardOpt,
    WorkerOpt,
    run_option,
)
from shardrun.model.errors import ConfigError


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
        typer.Option(
            "--partition",
            metavar="K/N",
            help="Run partition K of N of the plan (beside --image, or --plan); default: "
            "from CI_NODE_INDEX, BUILDKITE_PARALLEL_JOB or CIRCLE_NODE_INDEX.",
        ),
    ] = None,
    plan_path: Annotated[
        Path | None,
        typer.Option("--plan", metavar="PATH", help="The plan `build --partitions` wrote."),
    ] = None,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build the image once, run the shards, print a summary; exit 0 if all passed."""
    from shardrun.config.load import load, with_overrides
    from shardrun.config.workers import chosen, parse_worker_option
    from shardrun.plan import partition
    from shardrun.plan.make import planned
    from shardrun.plan.rerun import only_failed
    from shardrun.report.write import REPORTS, copy_report
    from shardrun.run import workflow
    from shardrun.run.drive import run_under
    from shardrun.run.request import RunRequest, read_secrets
    from shardrun.ui.console import pick_view
    from shardrun.ui.summary import print_outcome

    cfg = with_overrides(load(config), build_arg or (), builder)
    image_path, image_ref = _file_or_image(image)
    share = partition.for_job(cfg, image_path, plan_path, partition_text)
    shards = tuple(planned(cfg, shard)) if share is None else share.shards
    replan = None
    if share is not None:
        if not shards:
            print(
                f"shardrun: partition {share.index}/{share.plan.total} of {share.path} has "
                "no shards (the plan has fewer than its partitions); nothing to run"
            )
            raise typer.Exit(0)
    elif failed or run_id:
        past, shards = only_failed(cfg, shards, run_id)
        if not shards:
            print(f"shardrun: run {past} had no failed shards; nothing to run")
            raise typer.Exit(0)
    elif any(spec.per_slot for spec in cfg.shards):  # count = "slots": once slots are known
        replan = functools.partial(planned, cfg, shard)
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
    leftovers = (
        f"containers labelled shardrun.run={request.run_id} may be left on the "
        "workers; its watchdog, or the next shardrun command there, removes them"
    )
    summary = run_under(view, functools.partial(workflow.run, request), leftovers)
    reports = [request.run_dir / name for name in REPORTS]
    for name, wanted in (
        ("junit.xml", junit_out),
        ("report.json", json_out),
        ("report.html", html_out),
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
    if given is None:
        return None, None
    path = Path(given)
    if path.is_file() or path.name.endswith((".tar", ".tar.gz", ".tgz", ".tar.zst")):
        return path, None
    return None, given


@handles_errors
def build(
    config: ConfigOpt = None,
    build_arg: BuildArgOpt = None,
    builder: BuilderOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Also write the image as one file for other machines: FILE.tar.zst (zstd), "
            ".tar.gz (gzip) or .tar; `shardrun run --image FILE` runs it.",
        ),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            "--partitions",
            min=1,
            metavar="N",
            help="With --output: also plan the shards over N CI jobs, balanced by recorded "
            "times, into FILE's .plan.json beside it.",
        ),
    ] = None,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build the image and save its tarball; print the image ID and the tarball path (or,
    with --output, the image file's)."""
    from shardrun.config.load import load, with_overrides
    from shardrun.distribute import image_file
    from shardrun.run import workflow
    from shardrun.run.connect import connect_builder
    from shardrun.run.drive import run_under, unless_interrupted
    from shardrun.state import files
    from shardrun.state.layout import state_dir
    from shardrun.ui.console import pick_view

    cfg = with_overrides(load(config), build_arg or (), builder)
    files.make_state_dirs(state_dir(cfg.root))

    async def work(emit, interrupt):
        async def stages():
            engine = await connect_builder(cfg)
            image_id = await workflow.build_image(cfg, engine, emit)
            return image_id, await workflow.save_artifact(cfg, engine, image_id, emit)

        return await unless_interrupted(interrupt, stages)

    if partitions is not None and output is None:
        raise ConfigError("--partitions needs --output FILE: the plan goes beside the image file")
    if output is not None:
        image_file.codec_of(output)  # a usage error: before the build
    image_id, saved = run_under(pick_view(plain)[0], work)
    print(image_id)
    if output is None:
        print(saved.path)
        return
    written = image_file.write(saved.path, image_id, output)
    print(written.path)
    if partitions is not None:
        _write_plan(cfg, image_id, output, partitions)
    print(
        f"shardrun: {written.codec}, {written.size / 1e6:.1f} MB of {written.raw_size / 1e6:.1f} MB; "
        f"run it elsewhere with: shardrun run --image {written.path.name}",
        file=sys.stderr,
    )


def _write_plan(cfg, image_id: str, output: Path, total: int) -> None:
    """The matrix's plan, beside the image file: the same for every job that reads it."""
    from shardrun.plan import partition, timings
    from shardrun.plan.make import planned

    # A count = "slots" split makes N times this machine's CPUs of groups: the jobs of
    # hosted CI are machines alike.
    shards = planned(cfg, None, total * (os.cpu_count() or 1))
    plan = partition.make(
        shards,
        total,
        timings.load(cfg.timings_path),
        timings.load_files(cfg.timings_path),
        image_id,
        partition.config_digest(cfg),
    )
    path = partition.beside(output)
    partition.save(plan, path)
    print(path)
    print(
        f"shardrun: {len(shards)} shards over {total} partitions, expected "
        f"{min(plan.expected):.1f}-{max(plan.expected):.1f}s each; each job runs: "
        f"shardrun run --image {output.name} --partition K/{total}",
        file=sys.stderr,
    )


@handles_errors
def list_shards(
    config: ConfigOpt = None,
    shard: ShardOpt = None,
    partition_text: Annotated[
        str | None,
        typer.Option(
            "--partition",
            metavar="K/N",
            help="Show partition K of N of the plan: its shards, files and expected seconds.",
        ),
    ] = None,
    plan_path: Annotated[
        Path | None,
        typer.Option("--plan", metavar="PATH", help="The plan `build --partitions` wrote."),
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", metavar="FILE", help="The image file the plan lies beside."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Print the expanded shards, in the order they would start, with their commands; or
    a CI matrix's partitions, from its plan."""
    from shardrun.config.load import load
    from shardrun.plan import listing, partition, timings
    from shardrun.plan.make import planned

    cfg = load(config)
    path = partition.find_plan(image, plan_path, needed=partition_text is not None)
    if path is not None:
        plan = partition.load(path)
        index, total = None, plan.total
        if partition_text is not None or partition.in_matrix():
            index, total = partition.parse_partition(partition_text)
        partition.check(plan, total, None, partition.config_digest(cfg), path)
        for line in listing.partition_lines(plan, str(path), index):
            print(line)
        return
    slots = os.cpu_count() or 1
    shards = planned(cfg, shard, slots)
    for line in listing.lines(shards, timings.load_files(cfg.timings_path), slots):
        print(line)
