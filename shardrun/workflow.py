"""The run, stage by stage: resolve workers → build → save → distribute + run → record.

Each stage is a verb that takes the previous stage's result. Stages emit events for the
front end and never print.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio import to_thread

from shardrun import artifact, build, distribute, execute, plan, report, schedule, timings
from shardrun import workers as workers_mod
from shardrun.config import Config, WorkerSpec
from shardrun.engine import Endpoint, resolve
from shardrun.errors import InfraError
from shardrun.events import (
    ArtifactReady,
    Emit,
    RunPlanned,
    ShardFinished,
    ShardRequeued,
    ShardStarted,
    WorkerLost,
    WorkerReady,
)
from shardrun.plan import Shard
from shardrun.results import ShardResult, Status
from shardrun.workers import Worker


@dataclass(frozen=True)
class RunRequest:
    config: Config
    shards: tuple[Shard, ...]  # selected and in the order to start them
    jobs: int | None = None  # at most this many containers at once, over all workers
    retries: int = 0
    workers: tuple[WorkerSpec, ...] = ()  # from --worker; else the config's; else default

    @property
    def state_dir(self) -> Path:
        return self.config.root / ".shardrun"

    @property
    def worker_specs(self) -> tuple[WorkerSpec, ...]:
        return self.workers or self.config.workers or (workers_mod.DEFAULT,)


@dataclass(frozen=True)
class Prepared:
    image_id: str
    builder: Worker
    workers: list[Worker]
    unreachable: tuple[tuple[str, str], ...]  # (worker, why)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


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


async def connect_builder() -> Worker:
    """The engine that builds: the current docker context, as `docker build` would use."""
    return await to_thread.run_sync(
        workers_mod.connect, workers_mod.DEFAULT, resolve(None), "local"
    )


async def build_image(config: Config, builder: Worker, emit: Emit) -> str:
    # Abandoned on Ctrl-C: closing the stream is what cancels a BuildKit build.
    image_id = await to_thread.run_sync(
        build.build, builder.client, config.image, emit, {execute.LABEL_PROJECT: config.project},
        abandon_on_cancel=True,
    )
    artifact.record_latest(config.root / ".shardrun", image_id)
    return image_id


def _announce(emit: Emit):
    return lambda saved: emit(
        ArtifactReady(path=_rel(saved.path), size=saved.size, reused=saved.reused)
    )


async def save_artifact(config: Config, builder: Worker, image_id: str, emit: Emit):
    """Save (or reuse) the tarball now: `shardrun build` does, for later runs and loads."""
    cache = config.root / ".shardrun" / "cache"
    saved = await to_thread.run_sync(artifact.ensure, builder.client, image_id, cache)
    _announce(emit)(saved)
    return saved


async def connect_workers(
    resolved: list[tuple[WorkerSpec, Endpoint, str]], emit: Emit, jobs: int | None = None
) -> tuple[list[Worker], tuple[tuple[str, str], ...]]:
    """Connect to every worker at once; an unreachable one is reported and skipped."""
    connected: dict[int, Worker] = {}
    failed: list[tuple[str, str]] = []

    async def one(index: int, spec: WorkerSpec, endpoint: Endpoint, name: str) -> None:
        try:
            worker = await to_thread.run_sync(
                workers_mod.connect, spec, endpoint, name, jobs, abandon_on_cancel=True
            )
        except InfraError as exc:
            failed.append((name, str(exc)))
            emit(WorkerLost(worker=name, reason=f"unreachable, skipped: {exc}"))
            return
        connected[index] = worker
        emit(WorkerReady(worker=name, slots=worker.slots,
                         detail=f"(docker {worker.version}, {worker.cpus} CPUs, {endpoint.url})"))

    async with anyio.create_task_group() as tg:
        for index, (spec, endpoint, name) in enumerate(resolved):
            tg.start_soon(one, index, spec, endpoint, name)
    if not connected:
        reasons = "; ".join(why for _, why in failed)
        raise InfraError(f"no worker is reachable: {reasons}")
    return [connected[i] for i in sorted(connected)], tuple(failed)


async def prepare(request: RunRequest, emit: Emit, interrupt: anyio.Event) -> Prepared | None:
    """Build once while connecting to the workers; None if interrupted."""
    resolved = resolve_workers(request)
    async with cancelled_by(interrupt):
        found: list = []

        async def connect_all() -> None:
            found.extend(await connect_workers(resolved, emit, request.jobs))

        async with anyio.create_task_group() as tg:
            tg.start_soon(connect_all)
            builder = await connect_builder()
            image_id = await build_image(request.config, builder, emit)
        workers, unreachable = found
        return Prepared(image_id, builder, workers, unreachable)
    return None


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    return str(path)


async def run_shards(
    request: RunRequest, prepared: Prepared, emit: Emit, interrupt: anyio.Event
) -> report.RunSummary:
    """Get the image onto each worker and run every shard on the workers' slots.

    A worker starts taking shards as soon as it holds the image. Interrupted runs still
    return a summary (with CANCELLED shards) after every container is removed.
    """
    config, workers, image_id = request.config, prepared.workers, prepared.image_id
    image = artifact.OnDemand(
        prepared.builder.client, image_id, request.state_dir / "cache", _announce(emit)
    )
    run_id = new_run_id()
    run_dir = request.state_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    emit(RunPlanned(run_id=run_id, shards=tuple(s.name for s in request.shards),
                    run_dir=_rel(run_dir)))
    for worker in workers:
        worker.start_run()
    queue = schedule.ShardQueue(request.shards, retries=request.retries)
    refusals = distribute.ThinRefusals(request.state_dir / "workers.json")

    def mark_lost(worker: Worker, reason: str) -> None:
        if worker.mark_lost(reason):
            emit(WorkerLost(worker=worker.name, reason=reason))

    async def deliver(worker: Worker) -> None:
        # In the worker's lost-scope: a load to a host cut off mid-transfer has no timeout.
        with worker.unless_lost():
            try:
                worker.delivery = await to_thread.run_sync(
                    distribute.deliver, worker.client, worker.name, worker.endpoint.url,
                    image, refusals, emit, config.project,
                    limiter=worker.limiter, abandon_on_cancel=True,
                )
            except (InfraError, *execute.ENGINE_ERRORS) as exc:
                mark_lost(worker, f"could not get the image there: {exc}")
        worker.set_ready(worker.delivery is not None and not worker.lost)

    async def run_one(shard: Shard, worker: Worker, slot: int, attempt: int) -> ShardResult:
        emit(ShardStarted(name=shard.name, worker=worker.name, slot=slot))
        labels = {
            execute.LABEL_RUN: run_id,
            execute.LABEL_SHARD: shard.name,
            execute.LABEL_PROJECT: config.project,
        }
        suffix = f".{attempt}" if attempt > 1 else ""
        log = run_dir / f"{shard.name}{suffix}.log"
        try:
            client, limiter = await worker.slot_client(slot)
        except InfraError as exc:
            result = execute.not_started(shard, worker.name, slot, log, str(exc), attempt)
        else:
            with worker.unless_lost() as scope:
                result = await execute.run_shard(
                    plan.for_worker(shard, worker.volumes),
                    execute.Placement(client, worker.name, slot), image_id, labels,
                    log, emit, limiter, attempt, cleanup,
                )
            if scope.cancelled_caught:
                result = execute.not_started(shard, worker.name, slot, log, worker.lost, attempt)
        emit(ShardFinished(result=result))
        return result

    try:
        async with (
            cancelled_by(interrupt),
            anyio.create_task_group() as cleanup,
            anyio.create_task_group() as heartbeats,
        ):
            for worker in workers:
                cleanup.start_soon(deliver, worker)
                heartbeats.start_soon(worker.watch, mark_lost)
            await schedule.run_queue(
                queue, workers, run_one,
                on_lost=lambda worker, why: mark_lost(worker, f"lost while running: {why}"),
                on_requeue=lambda shard, why: emit(ShardRequeued(name=shard.name, reason=why)),
                limit=request.jobs,
            )
            heartbeats.cancel_scope.cancel()
    finally:
        # Shielded: on Ctrl-C and on any failure, every container of the run is removed.
        with anyio.CancelScope(shield=True):
            await _reap(workers, run_id)
            interrupted = interrupt.is_set() or not queue.finished
            queue.abandon(Status.CANCELLED, "the run was interrupted")
            summary = report.RunSummary(
                run_id=run_id, project=config.project, image_id=image_id,
                started=started, finished=time.time(), results=tuple(queue.results()),
                interrupted=interrupted,
                workers=tuple(_worker_report(w) for w in workers)
                + tuple(report.WorkerReport(name, "", 0, lost=why)
                        for name, why in prepared.unreachable),
            )
            _record(request, summary, run_dir)
    return summary


def _worker_report(worker: Worker) -> report.WorkerReport:
    d = worker.delivery
    return report.WorkerReport(
        name=worker.name, url=worker.endpoint.url, slots=worker.slots, lost=worker.lost,
        load=d.mode if d else "", sent=d.sent if d else 0,
        full_size=d.full_size if d else 0, load_seconds=d.seconds if d else 0.0,
    )


async def _reap(workers: list[Worker], run_id: str) -> None:
    async def one(worker: Worker) -> None:
        with anyio.move_on_after(30):
            try:
                await execute.reap(worker.client, run_id, worker.limiter)
            except execute.ENGINE_ERRORS:
                pass  # an unreachable worker's containers die with it; nothing to reach

    async with anyio.create_task_group() as tg:
        for worker in workers:
            tg.start_soon(one, worker)


def _record(request: RunRequest, summary: report.RunSummary, run_dir: Path) -> None:
    path = request.state_dir / "timings.json"
    timings.save(path, timings.update(timings.load(path), summary.results))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    report.write(summary, run_dir, Path(step_summary) if step_summary else None)
    latest = request.state_dir / "runs" / "latest"
    with contextlib.suppress(OSError):  # a convenience only
        latest.unlink(missing_ok=True)
        latest.symlink_to(run_dir.name)
