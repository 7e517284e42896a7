"""`shardrun run` as one stage: what the user asked (`RunOptions`) made into a request
(which shards: the plan, a CI matrix job's share of it, or the failed ones of a past run;
which image: built, a file or one on the build engine), the run itself (or an empty
partition's record), and the copies of its reports the user asked for (`RunOutcome`).

The CLI only parses into `RunOptions` and shows the outcome."""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shardrun.config.spec import Config, WorkerSpec
from shardrun.config.workers import check_slots, chosen
from shardrun.image.context_files import split_files
from shardrun.model.shard import Shard
from shardrun.model.transit import IMAGE_FILE_SUFFIXES
from shardrun.plan import partition
from shardrun.plan.make import planned
from shardrun.plan.rerun import only_failed
from shardrun.report import history
from shardrun.report.summary import RunSummary
from shardrun.report.write import REPORTS, copy_report
from shardrun.run.request import Connect, RunRequest, read_secrets, real_engine
from shardrun.state import layout

if TYPE_CHECKING:  # drive brings anyio, which an empty partition's job never needs
    from shardrun.run.drive import View


@dataclass(frozen=True)
class RunOptions:
    """`shardrun run`'s options, as given."""

    config: Config  # with --build-arg and --builder applied
    patterns: tuple[str, ...] = ()  # --shard
    jobs: int | None = None
    retries: int = 0
    workers: tuple[WorkerSpec, ...] = ()  # --worker, parsed; () is the config's
    require_all_workers: bool = False
    failed: bool = False
    past_run: str | None = None  # --run: the run --failed reads
    keep_failed: bool = False
    fail_fast: bool = False
    reuse: bool = True  # not --no-reuse
    image: str | None = None  # --image: a file, or an image ID or tag on the build engine
    partition: str | None = None  # --partition K/N
    plan: Path | None = None
    junit: Path | None = None  # also write junit.xml here
    json: Path | None = None  # report.json
    html: Path | None = None  # report.html
    connect: Connect = field(default=real_engine, repr=False)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)


@dataclass(frozen=True)
class RunOutcome:
    summary: RunSummary | None  # None: nothing to run, and nothing recorded (`note` says why)
    reports: tuple[Path, ...] = ()
    note: str = ""  # why nothing, or no shard, ran


def run(options: RunOptions, view: View) -> RunOutcome:
    """Plan, run (shown in `view`) and record; an interrupted run returns its summary."""
    check_slots(options.jobs, f"--jobs {options.jobs}")  # each is also a worker's slots
    image_file = _image_file(options.image)
    share = partition.for_job(
        options.config,
        image_file,
        options.plan,
        options.partition,
        options.environ,
        split_files(options.config),
    )
    shards, replan, past = _shards(options, share)
    if past is not None and not shards:
        return RunOutcome(None, (), f"run {past} had no failed shards; nothing to run")
    request = _request(options, image_file, share, shards, replan)
    if share is not None and not shards:
        from shardrun.run.record import record_empty

        # Its run is recorded all the same: the merge must tell it from a lost job.
        note = (
            f"partition {share.index}/{share.plan.total} of {share.path} has no shards "
            "(the plan has fewer than its partitions); nothing to run"
        )
        summary = record_empty(request, share.plan.image_id)
    else:
        from shardrun.run import workflow
        from shardrun.run.drive import run_under

        note = ""
        leftovers = (
            f"containers labelled shardrun.run={request.run_id} may be left on the "
            "workers; its watchdog, or the next shardrun command there, removes them"
        )
        summary = run_under(view, functools.partial(workflow.run, request), leftovers)
    reports = [request.run_dir / name for name in REPORTS]
    for name, wanted in (
        (layout.JUNIT_XML, options.junit),
        (layout.REPORT_JSON, options.json),
        (layout.REPORT_HTML, options.html),
    ):
        if wanted is not None:
            reports.append(copy_report(request.run_dir / name, wanted))
    return RunOutcome(summary, tuple(reports), note)


Replan = Callable[[int], list[Shard]]


def _shards(
    options: RunOptions, share: partition.JobShare | None
) -> tuple[tuple[Shard, ...], Replan | None, str | None]:
    """The shards to run; the plan again once the slots are known (a split with count =
    "slots"), or None; and the past run --failed read, or None."""
    cfg, patterns = options.config, list(options.patterns) or None
    if share is not None:
        return share.shards, None, None
    files = split_files(cfg)
    shards = tuple(planned(cfg, patterns, files=files))
    if options.failed or options.past_run:
        past = history.load(layout.state_dir(cfg.root), options.past_run)
        run_id, failed = only_failed(past, shards)
        return failed, None, run_id
    if any(spec.per_slot for spec in cfg.shards):
        return shards, functools.partial(planned, cfg, patterns, files=files), None
    return shards, None, None


def _request(
    options: RunOptions,
    image_file: Path | None,
    share: partition.JobShare | None,
    shards: tuple[Shard, ...],
    replan: Replan | None,
) -> RunRequest:
    return RunRequest(
        config=options.config,
        shards=shards,
        workers=chosen(options.config, options.workers, options.require_all_workers),
        jobs=options.jobs,
        retries=options.retries,
        fail_fast=options.fail_fast,
        reuse=options.reuse,
        keep_failed=options.keep_failed,
        replan=replan,
        secrets=read_secrets(shards, options.environ),
        image_file=image_file,
        image_ref=options.image if options.image is not None and image_file is None else None,
        # The image given must be the one the plan was made for (workflow checks it).
        expected_image=share.plan.image_id if share and options.image else None,
        # Its place in the matrix, for the report (and the merge): which plan, which job.
        partition={**share.report_entry, "machine": socket.gethostname()} if share else None,
        connect=options.connect,
    )


def _image_file(given: str | None) -> Path | None:
    """`--image` as a file: when one is there or the name says it is an image file (so a
    missing one is named as a file); else (None) an image ID or tag on the build engine."""
    if given is None:
        return None
    path = Path(given)
    # Anything there is a file to read (a FIFO too: its reader refuses it in one line).
    if os.path.lexists(path) or path.name.endswith(tuple(IMAGE_FILE_SUFFIXES)):
        return path
    return None
