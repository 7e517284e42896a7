"""The stages of running shards on workers, each with one job: getting the image onto a
worker (`Distribution`), running one shard on a worker's slot (`ShardRunner`), and
recording a lost worker once (`LostWorkers`). `workflow.run_shards` puts them together
with the scheduler, the heartbeats and the final reap."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
from anyio import to_thread
from anyio.abc import TaskGroup

from shardrun.distribute import deliver as distribute
from shardrun.distribute.artifact.tarball import OnDemand
from shardrun.distribute.compress import codec_choice
from shardrun.distribute.compress.codec_choice import Target
from shardrun.distribute.compress.codecs import NONE
from shardrun.distribute.compress.shared_stream import SharedStreams
from shardrun.distribute.send import Link
from shardrun.distribute.worker_facts import WorkerFacts
from shardrun.engine.api import ENGINE_FAILURES
from shardrun.model import owner
from shardrun.model.errors import DiskFull, InfraError
from shardrun.model.events import Emit, ShardFinished, ShardStarted, WorkerLost
from shardrun.model.results import ShardResult
from shardrun.model.shard import Shard
from shardrun.plan.expand import for_worker
from shardrun.run.shard import execute
from shardrun.run.workers import Worker
from shardrun.state import layout


class LostWorkers:
    """Marks a worker lost and says so once, whoever noticed first (a load, a heartbeat,
    the scheduler)."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit

    def mark(self, worker: Worker, reason: str) -> None:
        if worker.mark_lost(reason):
            self.announce(worker, reason)

    def announce(self, worker: Worker, reason: str) -> None:
        self.emit(WorkerLost(worker=worker.name, reason=reason))


class Distribution:
    """Gets the image onto each worker (in a task of its own). A full disk on this machine is not the worker's fault: it stops the whole run
    through `stop`, and `stopped` says why."""

    def __init__(
        self,
        image: OnDemand,
        links: Links,
        project: str,
        lost: LostWorkers,
        stop: anyio.CancelScope,
    ) -> None:
        self.image, self.links, self.project = image, links, project
        self.lost, self.stop = lost, stop
        self.stopped: DiskFull | None = None

    async def deliver(self, worker: Worker) -> None:
        # In the worker's lost-scope: a load to a host cut off mid-transfer has no timeout.
        with worker.unless_lost():
            try:
                worker.delivery = await to_thread.run_sync(
                    self._deliver,
                    worker,
                    limiter=worker.limiter,
                    abandon_on_cancel=True,
                )
            except DiskFull as exc:
                self.stopped = self.stopped or exc
                self.stop.cancel()
            except (InfraError, *ENGINE_FAILURES) as exc:
                self.lost.mark(worker, f"could not get the image there: {exc}")
        worker.set_ready(worker.delivery is not None and not worker.lost)

    def _deliver(self, worker: Worker) -> distribute.Delivery:
        return distribute.deliver(
            worker.engine,
            self.links.link(worker),
            self.image,
            self.project,
            worker.containerd_store,
        )


class Links:
    """How the image travels to each worker of a run: the codec chosen for each (all at
    once, so workers that compress share one codec), and the run's shared compressed
    streams, closed when the run ends."""

    def __init__(self, workers: Sequence[Worker], facts: WorkerFacts, emit: Emit) -> None:
        self.facts, self.emit = facts, emit
        targets = [Target(w.name, w.endpoint.url, w.compress, w.containerd_store) for w in workers]
        self.codecs = codec_choice.choose(targets, facts)
        self.streams = SharedStreams()

    def link(self, worker: Worker) -> Link:
        codec = self.codecs.get(worker.name, NONE)
        return Link(worker.name, worker.endpoint.url, codec, self.streams, self.facts, self.emit)

    def compression(self) -> tuple[dict, ...]:
        """What compressing each layer, and each archive's own small parts, cost."""
        return tuple(dataclasses.asdict(f) for f in self.streams.figures())

    def close(self) -> None:
        self.streams.close()


class ShardRunner:
    """Runs one shard on one slot of a worker, as the scheduler asks: its labels (owner,
    deadline), its log file, its slot's engine connection, and a scope that a lost worker
    cancels. Exited containers are removed in `cleanup`, off the slot's critical path."""

    def __init__(
        self,
        run_id: str,
        project: str,
        run_dir: Path,
        secrets: Mapping[str, str],
        emit: Emit,
        cleanup: TaskGroup,
        keep_failed: bool = False,
    ) -> None:
        self.run_dir, self.secrets, self.keep_failed = run_dir, secrets, keep_failed
        self.emit, self.cleanup = emit, cleanup
        self.labels = {owner.LABEL_RUN: run_id, owner.LABEL_PROJECT: project, **owner.me().labels()}

    async def __call__(self, shard: Shard, worker: Worker, slot: int, attempt: int) -> ShardResult:
        self.emit(ShardStarted(name=shard.name, worker=worker.name, slot=slot))
        labels = {
            **self.labels,
            owner.LABEL_SHARD: shard.name,
            **owner.deadline_label(shard.timeout),
        }
        log = layout.shard_log(self.run_dir, shard.name, attempt)
        try:
            connection, limiter = await worker.slot_engine(slot)
        except InfraError as exc:
            result = execute.not_started(
                shard, worker.name, slot, log, str(exc), attempt, worker_fault=True
            )
        else:
            # The scheduler gives a worker shards only once it holds the image.
            assert worker.delivery is not None
            with worker.unless_lost() as scope:
                job = execute.ShardJob(
                    for_worker(shard, worker.volumes),
                    execute.Placement(connection, worker.name, slot),
                    worker.delivery.ref,
                    labels,
                    log,
                    attempt,
                    self.secrets,
                    self.keep_failed,
                )
                result = await execute.run_shard(job, self.emit, limiter, self.cleanup)
            if scope.cancelled_caught:
                result = execute.not_started(shard, worker.name, slot, log, worker.lost, attempt)
        self.emit(ShardFinished(result=result))
        return result
