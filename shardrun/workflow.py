"""The run, stage by stage: build → image artifact → workers → shards → report.

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
import docker
from anyio import to_thread

from shardrun import artifact, build, execute, report, schedule, timings
from shardrun.config import Config
from shardrun.engine import resolve
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
from shardrun.workers import Worker, connect


@dataclass(frozen=True)
class RunRequest:
    config: Config
    shards: tuple[Shard, ...]  # selected and in the order to start them
    jobs: int | None = None  # at most this many containers at once, over all workers
    retries: int = 0

    @property
    def state_dir(self) -> Path:
        return self.config.root / ".shardrun"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def build_labels(config: Config) -> dict[str, str]:
    return {execute.LABEL_PROJECT: config.project}


async def connect_local(jobs: int | None) -> Worker:
    return await to_thread.run_sync(connect, resolve(None), jobs)


async def build_image(config: Config, worker: Worker, emit: Emit) -> str:
    # Abandoned on Ctrl-C: closing the stream is what cancels a BuildKit build.
    return await to_thread.run_sync(
        build.build, worker.client, config.image, emit, build_labels(config),
        abandon_on_cancel=True,
    )


async def save_artifact(config: Config, worker: Worker, image_id: str, emit: Emit):
    cache = config.root / ".shardrun" / "cache"
    saved = await to_thread.run_sync(artifact.ensure, worker.client, image_id, cache)
    emit(ArtifactReady(path=_rel(saved.path, config.root), size=saved.size, reused=saved.reused))
    return saved


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)


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


async def prepare(request: RunRequest, emit: Emit, interrupt: anyio.Event):
    """Connect, build once, save the tarball; None if interrupted on the way."""
    async with cancelled_by(interrupt):
        worker = await connect_local(request.jobs)
        announce(worker, emit)
        image_id = await build_image(request.config, worker, emit)
        await save_artifact(request.config, worker, image_id, emit)
        return [worker], image_id
    return None


async def run_shards(
    request: RunRequest, workers: list[Worker], image_id: str, emit: Emit,
    interrupt: anyio.Event,
) -> report.RunSummary:
    """Run every shard on the workers' slots; interrupted runs still return a summary."""
    config = request.config
    run_id = new_run_id()
    run_dir = request.state_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    emit(RunPlanned(run_id=run_id, shards=tuple(s.name for s in request.shards),
                    run_dir=_rel(run_dir, config.root)))
    slots = sum(w.slots for w in workers)
    limiter = anyio.CapacityLimiter(4 * slots + 8)  # each container holds ~2 threads
    queue = schedule.ShardQueue(request.shards, retries=request.retries)
    lost: list[str] = []

    async def run_one(shard: Shard, worker: Worker, slot: int, attempt: int) -> ShardResult:
        emit(ShardStarted(name=shard.name, worker=worker.name, slot=slot))
        labels = {
            execute.LABEL_RUN: run_id,
            execute.LABEL_SHARD: shard.name,
            execute.LABEL_PROJECT: config.project,
        }
        suffix = f".{attempt}" if attempt > 1 else ""
        result = await execute.run_shard(
            shard, execute.Placement(worker.client, worker.name, slot), image_id, labels,
            run_dir / f"{shard.name}{suffix}.log", emit, limiter, attempt, cleanup,
        )
        emit(ShardFinished(result=result))
        return result

    def on_lost(worker: Worker, reason: str) -> None:
        lost.append(worker.name)
        emit(WorkerLost(worker=worker.name, reason=reason))

    try:
        async with cancelled_by(interrupt), anyio.create_task_group() as cleanup:
            await schedule.run_queue(
                queue, workers, run_one, on_lost=on_lost,
                on_requeue=lambda shard, why: emit(ShardRequeued(name=shard.name, reason=why)),
                limit=request.jobs,
            )
    finally:
        # Shielded: on Ctrl-C and on any failure, every container of the run is removed.
        with anyio.CancelScope(shield=True):
            await _reap(workers, run_id, limiter)
            interrupted = interrupt.is_set() or not queue.finished
            queue.abandon(Status.CANCELLED, "the run was interrupted")
            summary = report.RunSummary(
                run_id=run_id, project=config.project, image_id=image_id, started=started,
                finished=time.time(), results=tuple(queue.results()), interrupted=interrupted,
                lost_workers=tuple(lost),
            )
            _record(request, summary, run_dir)
    return summary


async def _reap(workers: list[Worker], run_id: str, limiter) -> None:
    for worker in workers:
        try:
            with anyio.move_on_after(30):
                await execute.reap(worker.client, run_id, limiter)
        except docker.errors.DockerException:
            pass  # an unreachable worker's containers die with it; nothing to reach


def _record(request: RunRequest, summary: report.RunSummary, run_dir: Path) -> None:
    path = request.state_dir / "timings.json"
    timings.save(path, timings.update(timings.load(path), summary.results))
    report.write(summary, run_dir)
    latest = request.state_dir / "runs" / "latest"
    try:
        latest.unlink(missing_ok=True)
        latest.symlink_to(run_dir.name)
    except OSError:
        pass  # a convenience only


def announce(worker: Worker, emit: Emit) -> None:
    emit(WorkerReady(worker=worker.name, slots=worker.slots,
                     detail=f"(docker {worker.version}, {worker.cpus} CPUs)"))
