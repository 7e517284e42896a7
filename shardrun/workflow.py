"""The run, stage by stage: resolve workers → build → save → distribute + run → record.

Each stage is a verb that takes the previous stage's result. Stages emit events for the
front end and never print.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio
from anyio import to_thread

from shardrun import (
    artifact,
    build,
    cache_files,
    distribute,
    execute,
    junit,
    owner,
    plan,
    reap,
    report,
    schedule,
    stages,
    timings,
)
from shardrun import workers as workers_mod
from shardrun.config import Config, WorkerSpec
from shardrun.engine import ENGINE_FAILURES, Endpoint, resolve
from shardrun.errors import ConfigError, DiskFull, InfraError
from shardrun.events import (
    ArtifactReady,
    BuildFinished,
    BuildStarted,
    Emit,
    RunPlanned,
    ShardRequeued,
    WorkerLost,
    WorkerReady,
)
from shardrun.plan import Shard
from shardrun.results import Status
from shardrun.watchdog import Watchdog
from shardrun.workers import Worker


@dataclass(frozen=True)
class RunRequest:
    config: Config
    shards: tuple[Shard, ...]  # selected and in the order to start them
    jobs: int | None = None  # at most this many containers at once, over all workers
    retries: int = 0
    workers: tuple[WorkerSpec, ...] = ()  # from --worker; else the config's; else default
    require_all_workers: bool = False  # a lost worker fails the run (exit 4)
    fail_fast: bool = False  # after a shard fails its tests, no queued shard starts
    keep_failed: bool = False  # failed shards' stopped containers stay, for a look inside
    # The plan again for the run's slot count, once the workers are connected (a split
    # with count = "slots"); None: `shards` stands.
    replan: Callable[[int], list[Shard]] | None = field(default=None, repr=False)
    # The values of the shards' secret-env names, from this process's environment. Never
    # written anywhere by shardrun: kept out of repr, reports and messages.
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)
    run_id: str = field(default_factory=lambda: new_run_id())

    @property
    def state_dir(self) -> Path:
        return self.config.root / ".shardrun"

    @property
    def worker_specs(self) -> tuple[WorkerSpec, ...]:
        specs = self.workers or self.config.workers or (workers_mod.DEFAULT,)
        if self.require_all_workers:
            specs = tuple(replace(spec, required=True) for spec in specs)
        return specs


@dataclass(frozen=True)
class Prepared:
    image_id: str
    builder: Worker
    workers: list[Worker]
    unreachable: tuple[tuple[str, str, bool], ...]  # (worker, why, required)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def read_secrets(shards: tuple[Shard, ...], environ: Mapping[str, str]) -> dict[str, str]:
    """The values of every `secret-env` name the shards use, from `environ`."""
    values: dict[str, str] = {}
    for shard in shards:
        for name in shard.secret_env:
            if name not in environ:
                raise ConfigError(
                    f'shard "{shard.name}": secret-env {name} is not set in this environment; '
                    f"export {name} before running shardrun (its value is passed to the "
                    "container only, never written or printed)"
                )
            values[name] = environ[name]
    return values


def make_state_dirs(state_dir: Path) -> None:
    """.shardrun/ holds logs that may show what a test saw: only its owner may read it.
    Temp files of runners that died mid-write (SIGKILL during a save) go here too."""
    for path in (state_dir, state_dir / "cache", state_dir / "runs"):
        path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)  # made by an older version with the umask's mode
    cache_files.sweep_stale_temp(state_dir / "cache")


@contextlib.asynccontextmanager
async def cancelled_by(interrupt: anyio.Event):
    """Cancel the body when `interrupt` is set (Ctrl-C or SIGTERM, set by the CLI)."""

    async def watch(scope: anyio.CancelScope) -> None:
        await interrupt.wait()
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        yield
        tg.cancel_scope.cancel()


def resolve_workers(request: RunRequest) -> list[tuple[WorkerSpec, Endpoint, str]]:
    """Resolve every worker and check the shards can run on each; no engine is contacted."""
    resolved = workers_mod.resolve(request.worker_specs)
    plan.check_remote_binds(
        request.shards, [(name, ep.is_remote, spec.volumes) for spec, ep, name in resolved]
    )
    return resolved


def connect_and_reap(spec: WorkerSpec, endpoint: Endpoint, name: str,
                      default_slots: int | None = None, reap_orphans: bool = True) -> Worker:
    """Connect; like every engine a command uses, it is first rid of orphaned containers
    (once per engine: the build engine is usually a worker too)."""
    worker = workers_mod.connect(spec, endpoint, name, default_slots)
    if reap_orphans:
        with contextlib.suppress(*ENGINE_FAILURES):
            reap.remove_orphans(worker.engine)
    return worker


def builder_endpoint(config: Config) -> tuple[WorkerSpec, Endpoint, str]:
    """The engine that builds: `[image] builder` (or `--builder`), a [[worker]] name, a
    docker context or an engine URL; by default the current docker context, as `docker
    build` would use. No engine is contacted."""
    name = config.image.builder
    if not name:
        return workers_mod.DEFAULT, resolve(None), "local"
    for spec in config.workers:
        if spec.name == name:
            return spec, resolve(spec.context or spec.host), name
    spec = WorkerSpec(name=None, context=None if "://" in name else name,
                      host=name if "://" in name else None, slots=None)
    endpoint = resolve(name)
    return spec, endpoint, endpoint.name


async def remove_containers(resolved: list[tuple[WorkerSpec, Endpoint, str]],
                            kept_only: bool) -> list[tuple[str, int, str]]:
    """`shardrun clean`: on every worker at once, the kept containers (or, not `kept_only`,
    every container with shardrun's labels). (worker, how many, error) per worker."""
    done: dict[int, tuple[str, int, str]] = {}

    def one(spec: WorkerSpec, endpoint: Endpoint, name: str) -> tuple[str, int, str]:
        try:
            worker = workers_mod.connect(spec, endpoint, name)
        except InfraError as exc:
            return name, 0, str(exc)
        try:
            return name, reap.remove_all(worker.engine, kept_only), ""
        except ENGINE_FAILURES as exc:
            return name, 0, str(exc)
        finally:
            worker.engine.close()

    async def each(index: int, spec: WorkerSpec, endpoint: Endpoint, name: str) -> None:
        done[index] = await to_thread.run_sync(one, spec, endpoint, name,
                                               abandon_on_cancel=True)

    async with anyio.create_task_group() as tg:
        for index, (spec, endpoint, name) in enumerate(resolved):
            tg.start_soon(each, index, spec, endpoint, name)
    return [done[i] for i in sorted(done)]


async def connect_builder(config: Config) -> Worker:
    """Connect to the builder and check it can build from a context sent over the API."""
    spec, endpoint, name = builder_endpoint(config)
    builder = await to_thread.run_sync(connect_and_reap, spec, endpoint, name,
                                       abandon_on_cancel=True)
    build.check_builder(builder.name, builder.version, builder.containerd_store)
    return builder


async def build_image(config: Config, builder: Worker, emit: Emit) -> str:
    # Abandoned on Ctrl-C: closing the stream is what cancels a BuildKit build.
    image_id = await to_thread.run_sync(
        build.build, builder.engine, config.image, emit, {owner.LABEL_PROJECT: config.project},
        abandon_on_cancel=True,
    )
    artifact.record_latest(config.root / ".shardrun", image_id)
    return image_id


def _announce(emit: Emit):
    return lambda saved: emit(
        ArtifactReady(path=_rel(saved.path), size=saved.size, reused=saved.reused,
                      seconds=saved.seconds)
    )


async def save_artifact(config: Config, builder: Worker, image_id: str, emit: Emit):
    """Save (or reuse) the tarball now: `shardrun build` does, for later runs and loads."""
    cache = config.root / ".shardrun" / "cache"
    saved = await to_thread.run_sync(
        artifact.ensure, builder.engine, image_id, cache, abandon_on_cancel=True
    )
    _announce(emit)(saved)
    return saved


async def connect_workers(
    resolved: list[tuple[WorkerSpec, Endpoint, str]], emit: Emit, jobs: int | None = None,
    reaped: str = "",
) -> tuple[list[Worker], tuple[tuple[str, str, bool], ...]]:
    """Connect to every worker at once, removing orphans there unless it is the engine at
    `reaped` (the builder's); an unreachable one is reported and skipped."""
    connected: dict[int, Worker] = {}
    failed: list[tuple[str, str, bool]] = []

    async def one(index: int, spec: WorkerSpec, endpoint: Endpoint, name: str) -> None:
        try:
            worker = await to_thread.run_sync(
                connect_and_reap, spec, endpoint, name, jobs, endpoint.url != reaped,
                abandon_on_cancel=True,
            )
        except InfraError as exc:
            failed.append((name, str(exc), spec.required))
            emit(WorkerLost(worker=name, reason=f"unreachable, skipped: {exc}"))
            return
        connected[index] = worker
        emit(WorkerReady(worker=name, slots=worker.slots,
                         detail=f"(docker {worker.version}, {worker.cpus} CPUs, {endpoint.url})"))

    async with anyio.create_task_group() as tg:
        for index, (spec, endpoint, name) in enumerate(resolved):
            tg.start_soon(one, index, spec, endpoint, name)
    if not connected:
        reasons = "; ".join(why for _, why, _ in failed)
        raise InfraError(f"no worker is reachable: {reasons}")
    return [connected[i] for i in sorted(connected)], tuple(failed)


async def prepare(request: RunRequest, emit: Emit, interrupt: anyio.Event) -> Prepared | None:
    """Build once while connecting to the workers; None if interrupted."""
    resolved = resolve_workers(request)
    make_state_dirs(request.state_dir)  # only once the config is known to be good
    async with cancelled_by(interrupt):
        found: list = []

        async def connect_all() -> None:
            found.extend(await connect_workers(resolved, emit, request.jobs,
                                               reaped=builder_url))

        builder_url = builder_endpoint(request.config)[1].url
        async with anyio.create_task_group() as tg:
            tg.start_soon(connect_all)
            builder = await connect_builder(request.config)
            image_id = await build_image(request.config, builder, emit)
        workers, unreachable = found
        return Prepared(image_id, builder, workers, unreachable)
    return None


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    return str(path)


async def run(request: RunRequest, emit: Emit, interrupt: anyio.Event) -> report.RunSummary:
    """The whole run. An interrupt at any stage still returns a summary, recorded with
    the run marked interrupted, once everything the run started is gone."""
    started = time.time()
    phases = Phases(emit)
    prepared = await prepare(request, phases, interrupt)
    if prepared is None:  # interrupted while building or connecting: nothing ran
        summary = _summary(request, started, None, [], (), schedule.ShardQueue(request.shards),
                           "the run was interrupted before it started", interrupted=True,
                           phases=phases)
        _record(request, summary)
        return summary
    if request.replan is not None:
        slots = sum(w.slots for w in prepared.workers)
        request = replace(request, shards=tuple(request.replan(min(slots, request.jobs or slots))))
    return await run_shards(request, prepared, phases, interrupt, started, phases)


class Phases:
    """Passes events on, noting when the build and the save happened, for report.json."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.build: dict | None = None
        self.save: dict | None = None
        self._build_started: float | None = None

    def __call__(self, event) -> None:
        now = time.time()
        if isinstance(event, BuildStarted):
            self._build_started = now
        elif isinstance(event, BuildFinished):
            self.build = {"started": self._build_started or now - event.duration,
                          "finished": now, "cached_steps": event.cached_steps,
                          "total_steps": event.total_steps}
        elif isinstance(event, ArtifactReady):
            self.save = {"started": now - event.seconds, "finished": now,
                         "bytes": event.size, "reused": event.reused}
        self.emit(event)


async def run_shards(
    request: RunRequest, prepared: Prepared, emit: Emit, interrupt: anyio.Event,
    started: float | None = None, phases: Phases | None = None,
) -> report.RunSummary:
    """Get the image onto each worker and run every shard on the workers' slots.

    A worker starts taking shards as soon as it holds the image; a load that no shard
    needs any more (every shard finished elsewhere) is abandoned. Interrupted runs still
    return a summary (with CANCELLED shards) after every container is removed. A full
    disk on this machine stops the run (DiskFull, raised after the cleanup).
    """
    workers, image_id = prepared.workers, prepared.image_id
    started = started or time.time()
    run_dir = _run_dir(request)
    emit(RunPlanned(run_id=request.run_id, shards=tuple(s.name for s in request.shards),
                    run_dir=_rel(run_dir)))
    for worker in workers:
        worker.start_run()
    queue = schedule.ShardQueue(request.shards, retries=request.retries,
                                fail_fast=request.fail_fast)
    lost = stages.LostWorkers(emit)
    stop = anyio.CancelScope()
    distribution = stages.Distribution(
        artifact.OnDemand(prepared.builder.engine, image_id, request.state_dir / "cache",
                          _announce(emit)),
        distribute.ThinRefusals(request.state_dir / "workers.json"), emit,
        request.config.project, lost, stop,
    )
    watchdog = Watchdog(request.run_id, [w.target for w in workers])
    try:
        async with cancelled_by(interrupt), anyio.create_task_group() as cleanup:
            runner = stages.ShardRunner(request.run_id, request.config.project, run_dir,
                                        request.secrets, emit, cleanup, request.keep_failed)
            with stop:
                async with anyio.create_task_group() as background:
                    for worker in workers:
                        background.start_soon(distribution.deliver, worker)
                        background.start_soon(worker.watch, lost.mark)
                    await schedule.run_queue(
                        queue, workers, runner,
                        on_lost=lambda w, why: lost.announce(w, f"lost while running: {why}"),
                        on_requeue=lambda s, why: emit(ShardRequeued(name=s.name, reason=why)),
                        limit=request.jobs,
                    )
                    # Heartbeats, and loads that no shard waits for any more.
                    background.cancel_scope.cancel()
    finally:
        # Shielded: on Ctrl-C and on any failure, every container of the run is removed.
        with anyio.CancelScope(shield=True):
            await _reap(workers, request.run_id)
            watchdog.release()
            summary = _finish(request, prepared, started, queue, interrupt, distribution.stopped,
                              phases)
    if distribution.stopped:
        raise distribution.stopped
    return summary


def _finish(request: RunRequest, prepared: Prepared, started: float,
            queue: schedule.ShardQueue, interrupt: anyio.Event,
            stopped: DiskFull | None, phases: Phases | None = None) -> report.RunSummary:
    """The run's summary, recorded: reports, timings, runs/latest."""
    why = f"the run stopped: {stopped}" if stopped else "the run was interrupted"
    summary = _summary(
        request, started, prepared.image_id, prepared.workers, prepared.unreachable, queue,
        why, interrupted=interrupt.is_set() or (not queue.finished and not stopped),
        error=str(stopped) if stopped else "", phases=phases,
    )
    _record(request, summary)
    return summary


def _run_dir(request: RunRequest) -> Path:
    path = request.state_dir / "runs" / request.run_id
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _summary(
    request: RunRequest, started: float, image_id: str | None, workers: list[Worker],
    unreachable: tuple[tuple[str, str, bool], ...], queue: schedule.ShardQueue, why: str,
    interrupted: bool, error: str = "", phases: Phases | None = None,
) -> report.RunSummary:
    """The run's summary: a shard without a result was CANCELLED, for `why`."""
    queue.abandon(Status.CANCELLED, why)
    return report.RunSummary(
        run_id=request.run_id, project=request.config.project, image_id=image_id,
        started=started, finished=time.time(), results=tuple(queue.results()),
        interrupted=interrupted, error=error, shards=request.shards,
        build=phases.build if phases else None, save=phases.save if phases else None,
        workers=tuple(_worker_report(w) for w in workers)
        + tuple(report.WorkerReport(name, "", 0, lost=why, required=required)
                for name, why, required in unreachable),
    )


def _worker_report(worker: Worker) -> report.WorkerReport:
    d = worker.delivery
    return report.WorkerReport(
        name=worker.name, url=worker.endpoint.url, slots=worker.slots, lost=worker.lost,
        load=d.mode if d else "", sent=d.sent if d else 0,
        full_size=d.full_size if d else 0, load_seconds=d.seconds if d else 0.0,
        required=worker.required, load_started=d.started if d else None,
    )


async def _reap(workers: list[Worker], run_id: str) -> None:
    async def one(worker: Worker) -> None:
        with anyio.move_on_after(30):
            try:
                await execute.reap(worker.engine, run_id, worker.limiter)
            except ENGINE_FAILURES:
                pass  # an unreachable worker's containers die with it; nothing to reach

    async with anyio.create_task_group() as tg:
        for worker in workers:
            tg.start_soon(one, worker)


def _record(request: RunRequest, summary: report.RunSummary) -> None:
    path = request.config.timings_path
    files_of = {s.name: s.files for s in request.shards if s.files}
    context = request.config.image.context
    files = None
    if files_of:
        files = timings.update_files(timings.load_files(path), summary.results, files_of,
                                     lambda name: (context / name).is_file(),
                                     junit.file_seconds)
    timings.save(path, timings.update(timings.load(path), summary.results), files)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    run_dir = _run_dir(request)
    report.write(summary, run_dir, Path(step_summary) if step_summary else None)
    latest = request.state_dir / "runs" / "latest"
    with contextlib.suppress(OSError):  # a convenience only
        latest.unlink(missing_ok=True)
        latest.symlink_to(run_dir.name)
