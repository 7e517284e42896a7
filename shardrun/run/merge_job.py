"""`shardrun merge` as one stage: the partition jobs' folders read (report/merge), the
merged run written apart from them, each JUnit file through the intake a run's own goes
through, and the timings the next build job's plan starts from. The CLI only parses
into `MergeRequest` and prints the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardrun.model.errors import ConfigError, InfraError
from shardrun.report import merge as merging
from shardrun.report.summary import RunSummary
from shardrun.report.write import REPORTS, save_reports
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


@dataclass(frozen=True)
class MergeOutcome:
    summary: RunSummary
    partitions: int
    reports: tuple[Path, ...]
    notes: tuple[str, ...]  # what was left out, a line each
    timings: Path


def merge(request: MergeRequest) -> MergeOutcome:
    partitions = merging.read(merging.find(list(request.inputs)))
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
    merged = merging.merge(partitions, run_id, run_dir, _take_junit)
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
    return MergeOutcome(summary, len(partitions), reports, merged.notes, path)


def _take_junit(data: BinaryIO, size: int, target: Path) -> tuple[str | None, str]:
    """A partition's JUnit file, through the intake a run's own JUnit file goes through."""
    taken = junit_intake.take_in(data, size, target, Masker(), junit_intake.JUNIT_MAX)
    return taken.path, taken.note
