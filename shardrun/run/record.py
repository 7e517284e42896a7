"""The end of a run: its summary from the queue's results, then everything it leaves on
disk (reports, timings, runs/latest). Also `Phases`, which notes when the build and the
save happened, for report.json."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from shardrun.model import owner
from shardrun.model.events import ArtifactReady, BuildFinished, BuildStarted, Emit, Event
from shardrun.model.results import Status
from shardrun.model.shard import Shard
from shardrun.model.transit import NONE
from shardrun.plan import affinity, timings
from shardrun.report import junit
from shardrun.report.summary import RunSummary, WorkerReport
from shardrun.report.write import save_reports
from shardrun.run import reuse
from shardrun.run.request import RunRequest
from shardrun.run.schedule import ShardQueue
from shardrun.state import layout
from shardrun.state.files import make_state_dirs, write_atomic
from shardrun.state.results_record import Passed

if TYPE_CHECKING:  # it brings in the Docker client, which an empty partition's job never needs
    from shardrun.run.workers import Worker


class Phases:
    """Passes events on, noting when the build and the save happened, for report.json."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.build: dict | None = None
        self.save: dict | None = None
        self._build_started: float | None = None

    def __call__(self, event: Event) -> None:
        now = time.time()
        if isinstance(event, BuildStarted):
            self._build_started = now
        elif isinstance(event, BuildFinished):
            self.build = {
                "started": self._build_started or now - event.duration,
                "finished": now,
                "cached_steps": event.cached_steps,
                "total_steps": event.total_steps,
            }
        elif isinstance(event, ArtifactReady):
            self.save = {
                "started": now - event.seconds,
                "finished": now,
                "bytes": event.size,
                "reused": event.reused,
            }
        self.emit(event)


@dataclass(frozen=True)
class Ending:
    """How far a run got: what it built and where, and why shards without a result have
    none (`why`)."""

    started: float
    why: str
    interrupted: bool
    image_id: str | None = None
    workers: tuple[Worker, ...] = ()
    unreachable: tuple[tuple[str, str, bool], ...] = ()  # (worker, why, required)
    error: str = ""
    compression: tuple[Mapping[str, Any], ...] = ()  # see RunSummary.compression
    reuse_keys: Mapping[str, str] = field(default_factory=dict)  # shard -> its reuse key


def summarize(
    request: RunRequest, queue: ShardQueue, ending: Ending, phases: Phases | None
) -> RunSummary:
    """The run's summary: a shard without a result was CANCELLED, for `ending.why`."""
    queue.abandon(Status.CANCELLED, ending.why)
    return RunSummary(
        run_id=request.run_id,
        project=request.config.project,
        image_id=ending.image_id,
        started=ending.started,
        finished=time.time(),
        results=tuple(
            replace(r, reuse_key=ending.reuse_keys.get(r.name)) if r.reuse_key is None else r
            for r in queue.results()
        ),
        interrupted=ending.interrupted,
        error=ending.error,
        shards=request.shards,
        build=phases.build if phases else None,
        save=phases.save if phases else None,
        partition=request.partition,
        compression=ending.compression,
        workers=tuple(_worker_report(w) for w in ending.workers)
        + tuple(
            WorkerReport(name, "", 0, lost=why, required=required)
            for name, why, required in ending.unreachable
        ),
    )


def _worker_report(worker: Worker) -> WorkerReport:
    d = worker.delivery
    return WorkerReport(
        name=worker.name,
        url=worker.endpoint.url,
        slots=worker.slots,
        lost=worker.lost,
        load=d.mode if d else "",
        sent=d.sent if d else 0,
        full_size=d.full_size if d else 0,
        load_seconds=d.seconds if d else 0.0,
        required=worker.required,
        load_started=d.started if d else None,
        codec=d.codec if d else NONE,
        wire=d.wire if d else 0,
    )


def make_run_dir(request: RunRequest) -> Path:
    """The run's folder, marked with its runner until `record` is done with it."""
    path = request.run_dir
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker = layout.run_owner(request.state_dir, request.run_id)
    if not marker.exists():
        write_atomic(marker, json.dumps(owner.me().labels()))
    return path


def record(
    request: RunRequest, summary: RunSummary, reused: Mapping[str, Passed] = MappingProxyType({})
) -> None:
    """The run's reports, the times the next plan uses, the passes a later run may reuse
    (`reused`: the record's entries this run reused), and runs/latest."""
    context = request.config.image.context
    save_times(
        request.config.timings_path,
        summary,
        request.shards,
        lambda name: (context / name).is_file(),
        tuple(glob for spec in request.config.shards for glob in spec.together),
    )
    save_reports(request.state_dir, make_run_dir(request), summary)
    if request.reuse:
        reuse.remember(
            layout.results_record(request.state_dir),
            summary.results,
            request.run_id,
            summary.image_id,
            reused,
        )
    layout.run_owner(request.state_dir, request.run_id).unlink(missing_ok=True)


def record_empty(request: RunRequest, image_id: str) -> RunSummary:
    """A partition job the plan gave no shards (more jobs than shards): its run folder,
    reports and runs/latest as any run leaves them, so that a merge tells it from a job
    that never reported. Nothing is built, loaded or contacted, and no times are saved:
    nothing ran."""
    make_state_dirs(request.state_dir)
    ending = Ending(time.time(), why="", interrupted=False, image_id=image_id)
    summary = summarize(request, ShardQueue(request.shards), ending, None)
    request.run_dir.mkdir(mode=0o700, exist_ok=True)
    save_reports(request.state_dir, request.run_dir, summary)
    return summary


def save_times(
    path: Path,
    summary: RunSummary,
    shards: Sequence[Shard],
    exists: Callable[[str], bool],
    together: Sequence[str] = (),
) -> None:
    """Blend the run's shard times, its split files' times (files for which `exists`
    says no are dropped) and the split groups' setup into the timings file the next plan
    reads. `together`: the config's split-together globs, which count as directories."""
    files_of = {s.name: s.files for s in shards if s.files}
    files, setup = None, None
    if files_of:
        files = timings.update_files(
            timings.load_files(path), summary.results, files_of, exists, junit.file_seconds
        )
        setup = timings.update_setup(
            timings.recorded_setup(path),
            _setup_samples(summary, files_of, together),
        )
    timings.save(
        path,
        timings.update(timings.load(path), summary.results),
        files,
        timings.update_gap(timings.recorded_gap(path), summary.results),
        setup,
    )


def _setup_samples(
    summary: RunSummary, files_of: Mapping[str, Sequence[str]], together: Sequence[str]
) -> list[tuple[float, int]]:
    """Each measured split group's seconds outside its test cases, and its directories."""
    samples = []
    for result in summary.results:
        files = files_of.get(result.name)
        if not files or result.status not in (Status.PASS, Status.FAIL) or not result.duration:
            continue
        own = junit.file_seconds(result, files)
        if own is not None:
            outside = max(result.duration - sum(own.values()), 0.0)
            samples.append((outside, len(affinity.units(files, together))))
    return samples
