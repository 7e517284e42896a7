"""One dynamic queue of shards over every slot of every worker.

`ShardQueue` is pure bookkeeping (tested without Docker). `run_queue` drives it: one task
per slot takes the next shard as soon as the slot is free, so fast slots do more.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import anyio

from shardrun.plan import Shard
from shardrun.results import ShardResult, Status


class Slots(Protocol):
    """A worker as the scheduler sees it: a name, a slot count, and whether it is alive."""

    name: str
    slots: int

    async def wait_ready(self) -> bool:
        """Until the worker can run shards (it has the image); False if it never will."""
        ...

    async def is_alive(self) -> bool: ...


@dataclass
class _Entry:
    shard: Shard
    attempt: int = 1
    lost_count: int = 0


class ShardQueue:
    """Pending shards in plan order; records results and decides what is tried again.

    A shard that fails its own tests is a result unless `retries` allows another attempt;
    a shard whose worker was lost goes back to the front of the queue (at most
    `requeue_lost` times), because nothing was learned about the shard itself.
    """

    def __init__(self, shards: Sequence[Shard], retries: int = 0, requeue_lost: int = 1):
        self._order = [s.name for s in shards]
        self._pending = [_Entry(s) for s in shards]
        self._running: dict[str, _Entry] = {}
        self._results: dict[str, ShardResult] = {}
        self.retries = retries
        self.requeue_lost = requeue_lost

    def take(self) -> tuple[Shard, int] | None:
        if not self._pending:
            return None
        entry = self._pending.pop(0)
        self._running[entry.shard.name] = entry
        return entry.shard, entry.attempt

    def finish(self, result: ShardResult) -> bool:
        """Record a result; True if the shard was queued for another attempt."""
        entry = self._running.pop(result.name)
        retryable = result.status in (Status.FAIL, Status.TIMEOUT, Status.ERROR)
        if retryable and entry.attempt <= self.retries:
            entry.attempt += 1
            self._pending.append(entry)
            return True
        self._results[result.name] = result
        return False

    def lost(self, name: str, result: ShardResult) -> bool:
        """The shard's worker died under it; True if it was queued to run elsewhere."""
        entry = self._running.pop(name)
        if entry.lost_count < self.requeue_lost:
            entry.lost_count += 1
            self._pending.insert(0, entry)
            return True
        self._results[name] = result
        return False

    def abandon(self, status: Status, detail: str) -> None:
        """Give every shard without a result `status` (no worker left, or interrupted)."""
        for entry in [*self._pending, *self._running.values()]:
            self._results.setdefault(entry.shard.name, _unrun(entry, status, detail))
        self._pending.clear()
        self._running.clear()

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    @property
    def finished(self) -> bool:
        return not self._pending and not self._running

    def results(self) -> list[ShardResult]:
        return [self._results[name] for name in self._order if name in self._results]


def _unrun(entry: _Entry, status: Status, detail: str) -> ShardResult:
    return ShardResult(
        name=entry.shard.name, status=status, exit_code=None, started=None, finished=None,
        worker=None, slot=None, log_path=None, detail=detail, attempt=entry.attempt,
    )


class _Changed:
    """Wakes idle slots when a shard finishes or is requeued."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait(self) -> None:
        await self._event.wait()


RunOne = Callable[[Shard, Slots, int, int], Awaitable[ShardResult]]
OnLost = Callable[[Slots, str], None]
OnRequeue = Callable[[Shard, str], None]


async def run_queue(
    queue: ShardQueue,
    workers: Sequence[Slots],
    run_one: RunOne,
    on_lost: OnLost = lambda worker, reason: None,
    on_requeue: OnRequeue = lambda shard, reason: None,
    limit: int | None = None,
) -> list[ShardResult]:
    """Run every shard of `queue` on the workers' slots until each has a result.

    `run_one(shard, worker, slot, attempt)` returns a result. An ERROR result from a
    worker that no longer answers marks the worker lost: its slots stop taking shards.
    `limit` caps the containers running at once over all workers (`--jobs`); a slot takes
    a shard only once it holds a place, so no shard waits on a slot that cannot start it.
    """
    changed = _Changed()
    places = anyio.Semaphore(limit) if limit else None
    lost: set[str] = set()
    live = {w.name: w.slots for w in workers}

    async def slot_loop(worker: Slots, slot: int) -> None:
        if not await worker.wait_ready():
            lost.add(worker.name)
        while worker.name not in lost:
            if not queue.has_pending:
                if queue.finished:
                    break
                await changed.wait()
                continue
            if places is not None:
                await places.acquire()
                if worker.name in lost:  # lost while this slot waited for a place
                    places.release()
                    continue
            item = queue.take()
            if item is None:
                if places is not None:
                    places.release()
                continue
            shard, attempt = item
            try:
                result = await run_one(shard, worker, slot, attempt)
            finally:
                if places is not None:
                    places.release()
            if result.status is Status.ERROR and not await worker.is_alive():
                if worker.name not in lost:
                    lost.add(worker.name)
                    on_lost(worker, result.detail)
                if queue.lost(shard.name, replace(result, detail=f"worker lost: {result.detail}")):
                    on_requeue(shard, f"worker {worker.name} lost")
            elif queue.finish(result):
                on_requeue(shard, f"attempt {attempt + 1} of {queue.retries + 1}")
            changed.notify()
        live[worker.name] -= 1
        if not any(live.values()):
            # The last slot is gone with its worker: nothing can take what is left.
            queue.abandon(Status.NOT_RUN, "no worker was left to run it")
        changed.notify()

    async with anyio.create_task_group() as tg:
        for worker in workers:
            for slot in range(1, worker.slots + 1):
                tg.start_soon(slot_loop, worker, slot)
    return queue.results()


def lower_bound(durations: Sequence[float], slots: int) -> float:
    """No schedule on `slots` slots can finish sooner than this (for the benchmarks)."""
    if not durations:
        return 0.0
    return max(max(durations), math.fsum(durations) / slots)
