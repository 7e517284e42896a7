"""One dynamic queue of shards over every slot of every worker.

`ShardQueue` is pure bookkeeping (tested without Docker). `run_queue` drives it: one task
per slot takes the next shard as soon as the slot is free, so fast slots do more.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

import anyio

from shardrun.model.results import FAILED, FAILED_TESTS, ShardResult, Status
from shardrun.model.shard import Shard


class Slots(Protocol):
    """A worker as the scheduler sees it: a name, a slot count, whether it is alive, and
    why it was lost ("" while it serves). The worker keeps that record; the scheduler
    asks it rather than keeping its own."""

    name: str
    slots: int
    lost: str

    async def wait_ready(self) -> bool:
        """Until the worker can run shards (it has the image); False if it never will."""
        ...

    async def is_alive(self) -> bool: ...

    def mark_lost(self, reason: str) -> bool:
        """Record the loss (and stop what runs there); False if it was lost already."""
        ...


@dataclass
class _Entry:
    shard: Shard
    attempt: int = 1
    lost_count: int = 0
    avoid: str | None = None  # the worker that failed it: another one takes it first


class ShardQueue:
    """Pending shards in plan order; records results and decides what is tried again.

    A shard that fails its own tests is a result unless `retries` allows another attempt;
    a shard whose worker was lost goes back to the front of the queue (at most
    `requeue_lost` times), because nothing was learned about the shard itself.
    """

    def __init__(
        self,
        shards: Sequence[Shard],
        retries: int = 0,
        requeue_lost: int = 1,
        fail_fast: bool = False,
    ):
        self._order = [s.name for s in shards]
        self._pending = [_Entry(s) for s in shards]
        self._running: dict[str, _Entry] = {}
        self._results: dict[str, ShardResult] = {}
        self.retries = retries
        self.requeue_lost = requeue_lost
        self.fail_fast = fail_fast

    def settle(self, result: ShardResult) -> None:
        """A result known before the shard runs (a pass reused from an earlier run): the
        shard leaves the queue."""
        self._pending = [e for e in self._pending if e.shard.name != result.name]
        self._results[result.name] = result

    def take(self, worker: str | None = None) -> tuple[Shard, int] | None:
        """The next shard for `worker`, skipping those its own failure put back."""
        for i, entry in enumerate(self._pending):
            if worker is None or entry.avoid != worker:
                del self._pending[i]
                self._running[entry.shard.name] = entry
                return entry.shard, entry.attempt
        return None

    def finish(self, result: ShardResult) -> bool:
        """Record a result; True if the shard was queued for another attempt."""
        entry = self._running.pop(result.name)
        retryable = result.status in FAILED
        if retryable and entry.attempt <= self.retries:
            entry.attempt += 1
            self._pending.append(entry)
            return True
        self._results[result.name] = result
        if self.fail_fast and result.status in FAILED_TESTS:
            # Its tests failed (an ERROR is the infrastructure's): nothing queued starts.
            for waiting in self._pending:
                self._results[waiting.shard.name] = _unrun(
                    waiting, Status.SKIPPED, f"--fail-fast: {result.name} failed first"
                )
            self._pending.clear()
        return False

    def lost(self, name: str, result: ShardResult, worker: str | None = None) -> bool:
        """The shard's worker died under it, or failed it with a transport error; True
        if it was queued to run elsewhere (preferably not on `worker`)."""
        entry = self._running.pop(name)
        if entry.lost_count < self.requeue_lost:
            entry.lost_count += 1
            entry.avoid = worker
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
        name=entry.shard.name,
        status=status,
        exit_code=None,
        started=None,
        finished=None,
        worker=None,
        slot=None,
        log_path=None,
        detail=detail,
        attempt=entry.attempt,
    )


# Transport errors on a worker that still answers pings before it is taken as lost: one
# may be a blip of the network, two in one run mean a worker going away (a daemon
# draining after SIGTERM behind a proxy answers some calls and resets others).
_FAULTS = 2


class _Changed:
    """Wakes idle slots when a shard finishes or is requeued."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait(self) -> None:
        await self._event.wait()


W = TypeVar("W", bound=Slots)  # the caller's worker type, handed back to its callbacks
OnRequeue = Callable[[Shard, str], None]


async def run_queue(
    queue: ShardQueue,
    workers: Sequence[W],
    run_one: Callable[[Shard, W, int, int], Awaitable[ShardResult]],
    on_lost: Callable[[W, str], None] = lambda worker, reason: None,
    on_requeue: OnRequeue = lambda shard, reason: None,
    limit: int | None = None,
) -> list[ShardResult]:
    """Run every shard of `queue` on the workers' slots until each has a result.

    `run_one(shard, worker, slot, attempt)` returns a result. An ERROR result from a
    worker that no longer answers marks the worker lost (`on_lost` is told once): its
    slots stop taking shards.
    `limit` caps the containers running at once over all workers (`--jobs`); a slot takes
    a shard only once it holds a place, so no shard waits on a slot that cannot start it.
    """
    changed = _Changed()
    places = anyio.Semaphore(limit) if limit else None
    live = {w.name: w.slots for w in workers}
    faults: dict[str, int] = {}

    async def ready_or_done(worker: Slots) -> bool:
        """Until the worker holds the image (True), or every shard has a result without
        it (False): a run never waits on a load that no shard needs any more."""
        ready = False
        async with anyio.create_task_group() as tg:

            async def until_ready() -> None:
                nonlocal ready
                ready = await worker.wait_ready()
                tg.cancel_scope.cancel()

            async def until_done() -> None:
                while not queue.finished:
                    await changed.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(until_ready)
            tg.start_soon(until_done)
        return ready

    async def slot_loop(worker: W, slot: int) -> None:
        if await ready_or_done(worker):
            await take_shards(worker, slot)
        live[worker.name] -= 1
        if not any(live.values()):
            # The last slot is gone with its worker: nothing can take what is left.
            queue.abandon(Status.NOT_RUN, "no worker was left to run it")
        changed.notify()

    async def take_shards(worker: W, slot: int) -> None:
        while not worker.lost:
            if not queue.has_pending:
                if queue.finished:
                    break
                await changed.wait()
                continue
            if places is not None:
                await places.acquire()
                if worker.lost:  # lost while this slot waited for a place
                    places.release()
                    continue
            # Only this worker left: it takes back what it failed rather than nobody.
            others = any(n for name, n in live.items() if name != worker.name)
            item = queue.take(worker.name if others else None)
            if item is None:
                if places is not None:
                    places.release()
                if queue.has_pending:  # only shards this worker failed: wait for a change
                    await changed.wait()
                continue
            shard, attempt = item
            try:
                result = await run_one(shard, worker, slot, attempt)
            finally:
                if places is not None:
                    places.release()
            alive = result.status is not Status.ERROR or await worker.is_alive()
            if not alive or result.worker_fault:
                # A transport error moves the shard whatever a ping says next. The worker
                # is lost if it does not answer now, or on its second such error.
                faults[worker.name] = faults.get(worker.name, 0) + 1
                if (not alive or faults[worker.name] >= _FAULTS) and worker.mark_lost(
                    f"lost while running: {result.detail}"
                ):
                    on_lost(worker, result.detail)
                gone = "lost" if worker.lost else "failed it"
                moved = replace(result, detail=f"worker {gone}: {result.detail}")
                if queue.lost(shard.name, moved, worker.name):
                    on_requeue(shard, f"worker {worker.name} {gone}: {result.detail}")
            elif queue.finish(result):
                on_requeue(shard, f"attempt {attempt + 1} of {queue.retries + 1}")
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
