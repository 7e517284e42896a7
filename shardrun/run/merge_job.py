"""`shardrun merge` as one stage: the partition jobs' folders read (report/merge), the
merged run written apart from them, each JUnit file through the intake a run's own goes
through, and the timings the next build job's plan starts from. The CLI only parses
into `MergeRequest` and prints the outcome.

With the build's plan (`--plan`), the plan's reused shards are settled into the merged
run as a run settles its own (run/reuse.py), and the merged run's clean passes go into
this folder's record of passes, so the CI cache the merge job saves carries them to the
next build job's plan."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from shardrun.model.errors import ConfigError, InfraError
from shardrun.model.results import ShardResult
from shardrun.plan import plan_file
from shardrun.plan.plan_file import Plan
from shardrun.report import merge as merging
from shardrun.report.summary import RunSummary
from shardrun.report.write import REPORTS, save_reports
from shardrun.run import reuse
from shardrun.run.record import save_times
from shardrun.run.request import new_run_id
from shardrun.run.shard import junit_intake
from shardrun.run.shard.masking import Masker
from shardrun.state import layout


@dataclass(frozen=True)
class MergeRequest:
    inputs: tuple[str, ...]  # run folders or report.json files; folders are searched
    project: Path  # the folder whose .shardrun/ gets the merged run and the timings
    output: Path | None = None  # --output: the merged run here instead
    plan: Path | None = None  # --plan: the build's plan, the truth about the matrix


@dataclass(frozen=True)
class MergeOutcome:
    summary: RunSummary
    partitions: int
    reports: tuple[Path, ...]
    notes: tuple[str, ...]  # what was left out, a line each
    timings: Path
    reused: int = 0  # the plan's reused shards, in the merged run as passed
    record: Path | None = None  # with a plan: the record of passes the merge added to
    recorded: int = 0  # passes it added there (or refreshed, for the reused ones)


def merge(request: MergeRequest) -> MergeOutcome:
    plan, planned = None, None
    if request.plan is not None:
        plan = plan_file.load(request.plan)
        planned = _planned(plan, request.plan)
    # No partition had shards: no job ran, none uploaded, and the download made no folder.
    found = merging.find(list(request.inputs), missing_ok=planned is not None and planned.idle)
    partitions = merging.read(found, planned)
    run_id = f"merged-{new_run_id()}"
    state = layout.state_dir(request.project)
    run_dir = request.output or layout.run_dir(state, run_id)
    merging.check_apart(run_dir, [p.folder for p in partitions], request.output is not None)
    try:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot make {run_dir}: {exc.strerror}; give --output a folder that can be written"
        ) from None
    reused = _settle(plan, run_dir) if plan is not None else ()
    merged = merging.merge(
        partitions,
        run_id,
        run_dir,
        _take_junit,
        reused=reused,
        image_id=plan.image_id if plan is not None else None,
        project=request.project.resolve().name,
    )
    summary = merged.summary
    try:
        save_reports(state, run_dir, summary, latest=request.output is None)
    except OSError as exc:
        raise InfraError(
            f"cannot write the merged run in {run_dir}: {exc.strerror}; free some space "
            "or give another --output"
        ) from None
    # The next build job's plan starts from these: cache or upload .shardrun/timings.json.
    path = layout.timings(state)
    save_times(path, summary, summary.shards, lambda name: True)
    reports = tuple(run_dir / name for name in REPORTS)
    outcome = MergeOutcome(summary, len(partitions), reports, merged.notes, path, len(reused))
    if plan is None:
        return outcome
    return _remember(outcome, plan, layout.results_record(state))


def _planned(plan: Plan, path: Path) -> merging.Planned:
    """The plan as the merge checks the partitions' reports against it."""
    shares = tuple(frozenset(s.name for s in part) for part in plan.partitions)
    return merging.Planned(str(path), plan.digest, shares)


def _settle(plan: Plan, run_dir: Path) -> tuple[ShardResult, ...]:
    """The plan's reused shards as results of the merged run, each with its log and its
    JUnit file of carried-over cases under REUSED/ (so the merged junit.xml is whole)."""
    if not plan.reused:
        return ()
    folder = run_dir / merging.REUSED
    try:
        folder.mkdir(exist_ok=True)
        return tuple(reuse.settled(p.shard, p, folder) for p in plan.reused)
    except OSError as exc:
        raise InfraError(
            f"cannot write the merged run in {run_dir}: {exc.strerror}; free some space "
            "or give another --output"
        ) from None


def _remember(outcome: MergeOutcome, plan: Plan, record: Path) -> MergeOutcome:
    """The merged run's clean passes added to the record (and the plan's reused entries
    marked used now), beside what it holds: a record restored from a CI cache keeps its
    entries. A record that cannot be written costs the next run time, not this verdict."""
    summary = outcome.summary
    earlier = {p.shard: p for p in plan.reused}
    try:
        count = reuse.remember(record, summary.results, summary.run_id, plan.image_id, earlier)
    except OSError as exc:
        note = (
            f"the passes were not recorded in {record} ({exc.strerror or exc}); "
            "the next build runs those shards again"
        )
        return replace(outcome, notes=(*outcome.notes, note), record=record)
    return replace(outcome, record=record, recorded=count)


def _take_junit(data: BinaryIO, size: int, target: Path) -> tuple[str | None, str]:
    """A partition's JUnit file, through the intake a run's own JUnit file goes through."""
    taken = junit_intake.take_in(data, size, target, Masker(), junit_intake.JUNIT_MAX)
    return taken.path, taken.note
