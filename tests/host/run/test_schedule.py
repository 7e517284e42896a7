"""shardrun.schedule: the queue's bookkeeping, and run_queue over fake workers.

run_queue only talks to workers through `Slots` (name, slots, is_alive) and to containers
through `run_one`, so a dataclass and a sleeping coroutine stand in for Docker. The async
tests run under `anyio.run` in plain test functions: no pytest plugin is assumed.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace

import anyio

from shardrun.model.results import ShardResult, Status
from shardrun.model.shard import Shard
from shardrun.run.schedule import ShardQueue, run_queue


def shards(*names: str) -> list[Shard]:
    return [Shard(name=n) for n in names]


def result(
    name: str,
    status: Status = Status.PASS,
    worker: str | None = "w",
    slot: int = 1,
    detail: str = "",
    attempt: int = 1,
) -> ShardResult:
    return ShardResult(
        name=name,
        status=status,
        exit_code=0 if status is Status.PASS else None,
        started=0.0,
        finished=1.0,
        worker=worker,
        slot=slot,
        log_path=None,
        detail=detail,
        attempt=attempt,
    )


# --- ShardQueue ----------------------------------------------------------------------------


def test_take_hands_out_shards_in_plan_order_then_none():
    queue = ShardQueue(shards("a", "b"))
    assert [(s.name, attempt) for s, attempt in [queue.take(), queue.take()]] == [
        ("a", 1),
        ("b", 1),
    ]
    assert queue.take() is None
    assert not queue.has_pending and not queue.finished  # both still running


def test_finish_records_the_result():
    queue = ShardQueue(shards("a"))
    queue.take()
    assert queue.finish(result("a", Status.FAIL)) is False
    assert queue.finished
    assert queue.results() == [result("a", Status.FAIL)]


def test_a_failure_is_retried_as_often_as_retries_allows_then_final():
    queue = ShardQueue(shards("a"), retries=1)
    queue.take()
    assert queue.finish(result("a", Status.FAIL)) is True
    assert queue.results() == []
    shard, attempt = queue.take()
    assert (shard.name, attempt) == ("a", 2)
    assert queue.finish(result("a", Status.FAIL, attempt=2)) is False
    assert queue.results() == [result("a", Status.FAIL, attempt=2)]
    assert queue.finished


def test_a_pass_is_never_retried():
    queue = ShardQueue(shards("a"), retries=3)
    queue.take()
    assert queue.finish(result("a")) is False
    assert queue.finished


def test_a_lost_shard_goes_to_the_front_once_then_is_final():
    queue = ShardQueue(shards("a", "b", "c"))
    queue.take()
    queue.take()
    assert queue.lost("b", result("b", Status.ERROR)) is True
    shard, attempt = queue.take()
    assert (shard.name, attempt) == ("b", 1)  # ahead of c; losing a worker is not an attempt
    lost_again = result("b", Status.ERROR, detail="worker lost: gone")
    assert queue.lost("b", lost_again) is False
    assert queue.take()[0].name == "c"
    queue.finish(result("a"))
    queue.finish(result("c"))
    assert queue.results() == [result("a"), lost_again, result("c")]


def test_abandon_gives_every_shard_without_a_result_the_status():
    queue = ShardQueue(shards("a", "b", "c"))
    queue.take()
    queue.take()
    queue.finish(result("a"))
    queue.abandon(Status.CANCELLED, "the run was interrupted")
    assert queue.finished and not queue.has_pending
    assert [(r.name, r.status, r.detail, r.worker) for r in queue.results()] == [
        ("a", Status.PASS, "", "w"),
        ("b", Status.CANCELLED, "the run was interrupted", None),  # was running
        ("c", Status.CANCELLED, "the run was interrupted", None),  # was pending
    ]


def test_results_are_in_plan_order_whatever_the_finishing_order():
    queue = ShardQueue(shards("a", "b", "c"))
    for _ in range(3):
        queue.take()
    for name in ("c", "a", "b"):
        queue.finish(result(name))
    assert [r.name for r in queue.results()] == ["a", "b", "c"]


# --- run_queue with fake workers -----------------------------------------------------------


@dataclass
class FakeWorker:
    name: str
    slots: int
    alive: bool = True
    ready: bool = True
    lost: str = ""

    async def wait_ready(self) -> bool:
        return self.ready

    async def is_alive(self) -> bool:
        return self.alive

    def mark_lost(self, reason: str) -> bool:
        if self.lost:
            return False
        self.lost = reason
        return True


@dataclass
class Run:
    shard: str
    worker: str
    slot: int
    attempt: int
    start: float
    end: float


@dataclass
class Recorder:
    """A fake run_one: sleeps per shard, records where and when, returns a scripted status."""

    durations: dict[str, float] = field(default_factory=dict)
    # shard → shards that must have finished before it does: ordering without relying on
    # how precisely the sleeps are timed.
    after: dict[str, set[str]] = field(default_factory=dict)
    # (worker, shard) → status; "*" as the shard matches every shard on that worker.
    statuses: dict[tuple[str, str], Status] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    lost: list[tuple[str, str]] = field(default_factory=list)
    requeued: list[tuple[str, str]] = field(default_factory=list)

    async def run_one(self, shard: Shard, worker: FakeWorker, slot: int, attempt: int):
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        start = time.monotonic()
        try:
            await anyio.sleep(self.durations.get(shard.name, 0.01))
            while not self.after.get(shard.name, set()) <= {r.shard for r in self.runs}:
                await anyio.sleep(0.005)
        finally:
            self.running -= 1
        self.runs.append(Run(shard.name, worker.name, slot, attempt, start, time.monotonic()))
        status = self.statuses.get(
            (worker.name, shard.name), self.statuses.get((worker.name, "*"), Status.PASS)
        )
        detail = "connection refused" if status is Status.ERROR else ""
        return result(shard.name, status, worker.name, slot, detail, attempt)

    def on_lost(self, worker: FakeWorker, reason: str) -> None:
        self.lost.append((worker.name, reason))

    def on_requeue(self, shard: Shard, reason: str) -> None:
        self.requeued.append((shard.name, reason))

    def ran_on(self, worker: str) -> list[str]:
        return [r.shard for r in self.runs if r.worker == worker]


def run(queue: ShardQueue, workers, rec: Recorder, limit: int | None = None):
    async def main():
        with anyio.fail_after(10):  # a scheduling bug fails the test instead of hanging it
            return await run_queue(
                queue,
                workers,
                rec.run_one,
                on_lost=rec.on_lost,
                on_requeue=rec.on_requeue,
                limit=limit,
            )

    return anyio.run(main)


def test_every_slot_of_every_worker_runs_at_once():
    rec = Recorder(durations=dict.fromkeys("abcd", 0.03))
    results = run(ShardQueue(shards(*"abcd")), [FakeWorker("w1", 2), FakeWorker("w2", 2)], rec)
    assert rec.most_at_once == 4
    assert {(r.worker, r.slot) for r in rec.runs} == {("w1", 1), ("w1", 2), ("w2", 1), ("w2", 2)}
    assert [r.status for r in results] == [Status.PASS] * 4


def test_a_free_slot_takes_the_next_shard_while_a_slow_one_runs():
    rec = Recorder(
        durations={"slow": 0.05, "f1": 0.01, "f2": 0.01, "f3": 0.01}, after={"slow": {"f3"}}
    )
    # A static split (two shards per slot) could never finish: slow waits for f3.
    results = run(ShardQueue(shards("slow", "f1", "f2", "f3")), [FakeWorker("w", 2)], rec)
    by_slot = {slot: [r.shard for r in rec.runs if r.slot == slot] for slot in (1, 2)}
    assert by_slot == {1: ["slow"], 2: ["f1", "f2", "f3"]}
    slow = next(r for r in rec.runs if r.shard == "slow")
    assert all(slow.start < r.start < slow.end for r in rec.runs if r.shard in ("f2", "f3"))
    assert [r.name for r in results] == ["slow", "f1", "f2", "f3"]


def test_limit_one_runs_strictly_one_at_a_time():
    rec = Recorder()
    run(ShardQueue(shards(*"abcde")), [FakeWorker("w1", 2), FakeWorker("w2", 2)], rec, limit=1)
    assert rec.most_at_once == 1
    runs = sorted(rec.runs, key=lambda r: r.start)
    assert [r.shard for r in runs] == list("abcde")
    assert all(before.end <= after.start for before, after in itertools.pairwise(runs))


def test_a_lost_worker_is_reported_once_and_its_shards_finish_elsewhere():
    rec = Recorder(
        durations={"s3": 0.05}, after={"s3": {"s1", "s2"}}, statuses={("bad", "*"): Status.ERROR}
    )
    bad, good = FakeWorker("bad", 2, alive=False), FakeWorker("good", 1)
    results = run(ShardQueue(shards("s1", "s2", "s3", "s4", "s5")), [bad, good], rec)
    assert rec.lost == [("bad", "connection refused")]
    # Both of bad's slots took a shard at the start; nothing went to it afterwards.
    assert sorted(rec.ran_on("bad")) == ["s1", "s2"]
    assert sorted(rec.ran_on("good")) == ["s1", "s2", "s3", "s4", "s5"]
    assert sorted(rec.requeued) == [
        ("s1", "worker bad lost: connection refused"),
        ("s2", "worker bad lost: connection refused"),
    ]
    assert [(r.name, r.status, r.worker) for r in results] == [
        (name, Status.PASS, "good") for name in ("s1", "s2", "s3", "s4", "s5")
    ]
    # Requeued at the front: the lost shards ran on good before the ones never started.
    order = [r.shard for r in rec.runs if r.worker == "good"]
    assert order[0] == "s3" and set(order[1:3]) == {"s1", "s2"} and order[3:] == ["s4", "s5"]


def test_when_the_only_worker_is_lost_the_rest_is_not_run():
    rec = Recorder(statuses={("w", "*"): Status.ERROR})
    results = run(ShardQueue(shards("a", "b", "c")), [FakeWorker("w", 1, alive=False)], rec)
    assert rec.lost == [("w", "connection refused")]
    assert rec.ran_on("w") == ["a"]
    assert [(r.name, r.status) for r in results] == [
        ("a", Status.NOT_RUN),
        ("b", Status.NOT_RUN),
        ("c", Status.NOT_RUN),
    ]
    assert all(r.detail == "no worker was left to run it" for r in results)


def test_a_failure_is_not_retried_without_retries():
    rec = Recorder(statuses={("w", "flaky"): Status.FAIL})
    results = run(ShardQueue(shards("flaky", "ok"), retries=0), [FakeWorker("w", 2)], rec)
    assert rec.ran_on("w").count("flaky") == 1
    assert rec.requeued == []
    assert [(r.name, r.status) for r in results] == [("flaky", Status.FAIL), ("ok", Status.PASS)]


def test_a_failure_is_retried_with_retries():
    rec = Recorder(statuses={("w", "flaky"): Status.FAIL})
    results = run(ShardQueue(shards("flaky"), retries=1), [FakeWorker("w", 1)], rec)
    assert [(r.shard, r.attempt) for r in rec.runs] == [("flaky", 1), ("flaky", 2)]
    assert rec.requeued == [("flaky", "attempt 2 of 2")]
    assert [(r.status, r.attempt) for r in results] == [(Status.FAIL, 2)]


def test_an_error_on_a_live_worker_is_a_result_not_a_lost_worker():
    rec = Recorder(statuses={("w", "a"): Status.ERROR})
    results = run(ShardQueue(shards("a", "b")), [FakeWorker("w", 1)], rec)
    assert rec.lost == [] and rec.requeued == []
    assert [(r.name, r.status) for r in results] == [("a", Status.ERROR), ("b", Status.PASS)]


def test_with_a_limit_a_lost_worker_takes_no_more_shards():
    rec = Recorder(statuses={("bad", "*"): Status.ERROR})
    bad, good = FakeWorker("bad", 2, alive=False), FakeWorker("good", 1)
    results = run(ShardQueue(shards("s1", "s2")), [bad, good], rec, limit=1)
    assert rec.ran_on("bad") == ["s1"]
    assert [(r.name, r.status, r.worker) for r in results] == [
        ("s1", Status.PASS, "good"),
        ("s2", Status.PASS, "good"),
    ]


def test_a_worker_that_never_gets_ready_takes_no_shard():
    queue = ShardQueue([Shard(name=f"s{i}") for i in range(4)])
    ran: list[str] = []

    async def run_one(shard, worker, slot, attempt):
        ran.append(worker.name)
        return result(shard.name, Status.PASS, worker.name, slot)

    workers = [FakeWorker("good", 1), FakeWorker("never", 2, ready=False)]
    results = anyio.run(run_queue, queue, workers, run_one)
    assert [r.status for r in results] == [Status.PASS] * 4
    assert set(ran) == {"good"}


def test_lower_bound_is_the_longest_shard_or_the_even_share():
    from shardrun.run.schedule import lower_bound

    assert lower_bound([7, 1, 1], 3) == 7
    assert lower_bound([2, 2, 2, 2, 2, 2], 3) == 4
    assert lower_bound([], 6) == 0


@dataclass
class FlakyRecorder(Recorder):
    """A worker whose calls fail with a transport error while its pings still answer, as a
    daemon draining after SIGTERM behind a socket proxy does."""

    faulty: str = ""

    async def run_one(self, shard: Shard, worker: FakeWorker, slot: int, attempt: int):
        res = await super().run_one(shard, worker, slot, attempt)
        if worker.name != self.faulty:
            return res
        return replace(
            res,
            status=Status.ERROR,
            exit_code=None,
            worker_fault=True,
            detail="could not create the container: Connection reset by peer",
        )


def test_a_transport_error_moves_the_shard_even_when_the_worker_still_answers_pings():
    rec = FlakyRecorder(faulty="flaky", durations={"s1": 0.02, "s2": 0.02, "s3": 0.05})
    flaky, good = FakeWorker("flaky", 1, alive=True), FakeWorker("good", 1)
    results = run(ShardQueue(shards("s1", "s2", "s3")), [flaky, good], rec)

    assert [(r.name, r.status, r.worker) for r in results] == [
        (name, Status.PASS, "good") for name in ("s1", "s2", "s3")
    ]
    # Two transport errors in one run and the worker is taken as lost, pings or not.
    assert [name for name, _ in rec.lost] == ["flaky"]
    assert len(rec.ran_on("flaky")) == 2
    assert all("Connection reset" in why for _, why in rec.requeued)


def test_a_shard_put_back_by_a_worker_goes_to_another_worker_first():
    queue = ShardQueue(shards("a", "b"))
    queue.take("w1")
    assert queue.lost("a", result("a", Status.ERROR), worker="w1") is True
    assert queue.take("w1")[0].name == "b"  # w1 skips the shard it failed
    assert queue.take("w1") is None and queue.has_pending
    assert queue.take("w2")[0].name == "a"


def test_the_run_ends_without_waiting_for_a_load_that_no_shard_needs():
    @dataclass
    class Loading(FakeWorker):
        async def wait_ready(self) -> bool:
            await anyio.sleep(60)  # a slow image load
            return True

    rec = Recorder()
    began = time.monotonic()
    results = run(ShardQueue(shards("a")), [FakeWorker("fast", 1), Loading("slow", 1)], rec)
    assert [(r.name, r.worker) for r in results] == [("a", "fast")]
    assert time.monotonic() - began < 5


def test_fail_fast_skips_what_is_queued_once_a_shard_fails_its_tests_but_not_for_an_error():
    queue = ShardQueue(shards("a", "b", "c", "d"), fail_fast=True)
    queue.take(), queue.take()
    queue.finish(result("a", Status.ERROR))  # infrastructure: no stop
    assert queue.has_pending
    queue.finish(result("b", Status.FAIL))  # its tests failed: c and d never start
    assert queue.take() is None and queue.finished
    statuses = {r.name: (r.status, r.detail) for r in queue.results()}
    assert statuses == {
        "a": (Status.ERROR, ""),
        "b": (Status.FAIL, ""),
        "c": (Status.SKIPPED, "--fail-fast: b failed first"),
        "d": (Status.SKIPPED, "--fail-fast: b failed first"),
    }


def test_fail_fast_waits_for_the_last_retry_before_it_stops_the_run():
    queue = ShardQueue(shards("a", "b"), retries=1, fail_fast=True)
    queue.take()
    assert queue.finish(result("a", Status.FAIL)) is True  # retried: not a result yet
    assert queue.has_pending
