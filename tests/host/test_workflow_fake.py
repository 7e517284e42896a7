"""The real run (workflow.run_shards, and distribute, schedule and execute under it) over
fake engines: the worker faults of a run, each one scripted, with no Docker daemon.

Workers are built around FakeEngines directly (no connect); the image is a FakeImage
that some of them hold already and the others are sent. Each test reads back the
summary, the events, which fake ran what, and what is left on the fakes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from shardrun.config import load as config_mod
from shardrun.distribute import pieces
from shardrun.engine.endpoints import Endpoint
from shardrun.model.errors import EngineRefused, TransportError
from shardrun.model.events import (
    Event,
    RunPlanned,
    ShardFinished,
    ShardOutput,
    ShardRequeued,
    ShardStarted,
    WorkerLost,
    WorkerTransfer,
)
from shardrun.model.image_ref import content_tag
from shardrun.model.results import ShardResult, Status
from shardrun.plan import expand as plan
from shardrun.report.summary import RunSummary, lost_line
from shardrun.run import workflow
from shardrun.run.request import RunRequest
from shardrun.run.workers import Worker
from tests.fakes.engine import FakeEngine, FakeImage
from tests.fakes.watchdogs import assert_released

PROJECT = "proj"
IMAGE = FakeImage.make(b"base layer", b"test layer", labels={"shardrun.project": PROJECT})
UNREACHABLE = "unix:///nonexistent.sock"  # what the watchdog is given: fails fast


@pytest.fixture(autouse=True)
def no_leftovers(monkeypatch):
    # run_shards appends to the file this names (a CI step summary), if it is set.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    yield
    assert_released()


@pytest.fixture
def fakes():
    """Makes fake engines; at the end each one stops answering, which frees any thread
    a run abandoned in one of them."""
    made: list[FakeEngine] = []

    def make(name: str, *, has_image: bool = True, **kwargs) -> FakeEngine:
        made.append(FakeEngine(name, images=[IMAGE] if has_image else [], **kwargs))
        return made[-1]

    yield make
    for fake in made:
        fake.stop_answering()


def worker(fake: FakeEngine, slots: int = 1) -> Worker:
    return Worker(
        name=fake.name,
        endpoint=Endpoint(fake.name, f"tcp://{fake.name}.test:2375"),
        engine=fake,
        slots=slots,
        cpus=fake.cpus,
        version=fake.version,
        target=UNREACHABLE,
    )


@dataclass
class Run:
    summary: RunSummary
    events: list[Event]

    def result(self, name: str) -> ShardResult:
        [found] = [r for r in self.summary.results if r.name == name]
        return found

    def table(self) -> list[tuple[str, Status, str | None]]:
        return [(r.name, r.status, r.worker) for r in self.summary.results]

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


During = Callable[[anyio.Event], Awaitable[None]]


def run(
    tmp_path: Path,
    workers: list[Worker],
    shards: list[dict],
    *,
    builder: FakeEngine | None = None,
    during: During | None = None,
    secrets: dict[str, str] | None = None,
) -> Run:
    """run_shards over `workers`, with shards.toml's [[shard]] tables `shards`; `during`
    runs beside it and gets the interrupt event."""
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    config = config_mod.parse(
        {"project": PROJECT, "shard": shards}, tmp_path / "shards.toml", cwd=tmp_path
    )
    request = RunRequest(config, tuple(plan.expand(config)), secrets=secrets or {})
    build_worker = worker(builder) if builder else workers[0]
    prepared = workflow.Prepared(IMAGE.id, build_worker, workers, unreachable=())
    events: list[Event] = []

    async def main() -> RunSummary:
        interrupt = anyio.Event()
        with anyio.fail_after(5):  # a hang fails the test instead of hanging it
            async with anyio.create_task_group() as tg:
                if during is not None:
                    tg.start_soon(during, interrupt)
                summary = await workflow.run_shards(request, prepared, events.append, interrupt)
                tg.cancel_scope.cancel()
        return summary

    return Run(anyio.run(main), events)


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await anyio.sleep(0.005)


def shard(name: str, **options) -> dict:
    return {"name": name, "command": ["pytest"], **options}


def created(*fakes: FakeEngine) -> list[str]:
    """The shards of every container created on these fakes."""
    return [c.shard for fake in fakes for c in fake.history]


# ---- the tests -------------------------------------------------------------------------


def test_all_shards_pass_across_two_workers(tmp_path, fakes):
    w1, w2 = fakes("w1").script(seconds=0.1), fakes("w2").script(seconds=0.1)

    out = run(tmp_path, [worker(w1, 2), worker(w2, 2)], [shard(f"s{i}") for i in range(1, 5)])

    assert [r.status for r in out.summary.results] == [Status.PASS] * 4
    assert out.summary.exit_code == 0 and not out.summary.interrupted
    # Four slots, four shards that each outlast the start of the others: one per slot.
    assert sorted(w1.started_shards() + w2.started_shards()) == ["s1", "s2", "s3", "s4"]
    assert len(w1.started_shards()) == len(w2.started_shards()) == 2
    for fake in (w1, w2):
        assert {out.result(s).worker for s in fake.started_shards()} == {fake.name}
        assert fake.present == {}  # every container removed
    assert [(w.name, w.load, w.lost) for w in out.summary.workers] == [
        ("w1", "none", ""),
        ("w2", "none", ""),
    ]
    assert w1.loads == w2.loads == []  # both held the image: no tarball was sent
    assert not out.of(ShardRequeued) and not out.of(WorkerLost)
    assert len(out.of(ShardStarted)) == len(out.of(ShardFinished)) == 4
    report = json.loads(
        (tmp_path / ".shardrun" / "runs" / out.summary.run_id / "report.json").read_text()
    )
    assert (report["exit_code"], len(report["shards"])) == (0, 4)


def test_a_worker_without_the_image_is_sent_the_tarball_then_runs(tmp_path, fakes):
    builder, w = fakes("builder"), fakes("w", has_image=False)

    out = run(tmp_path, [worker(w)], [shard("a"), shard("b")], builder=builder)

    assert out.table() == [("a", Status.PASS, "w"), ("b", Status.PASS, "w")]
    assert w.loads == [IMAGE.tarball([content_tag(IMAGE.id)])] and w.has_image(IMAGE.id)
    assert [c.name for c in builder.calls] == ["image_diff_ids", "image_size", "tag", "save"]
    [report] = out.summary.workers
    assert (report.load, report.sent) == ("full", len(IMAGE.tarball([content_tag(IMAGE.id)])))
    # A tcp:// worker never measured, on a graph-driver store: gzip, the tarball's bytes
    # fewer on the wire.
    assert (report.codec, report.wire < report.sent) == ("gzip", True)
    last = out.of(WorkerTransfer)[-1]
    assert (last.mode, last.codec, last.sent, last.raw) == (
        "full",
        "gzip",
        report.wire,
        report.sent,
    )


def test_a_remote_worker_lacking_the_image_gets_it_in_pieces_bottom_first(
    tmp_path, fakes, monkeypatch
):
    monkeypatch.setattr(pieces, "LEAST", 1)  # the fake image's layers are a few bytes
    builder, w = fakes("builder"), fakes("w", has_image=False)

    out = run(tmp_path, [worker(w)], [shard("a")], builder=builder)

    assert out.table() == [("a", Status.PASS, "w")]
    first, second = w.loads
    assert b"base layer" in first and b"test layer" not in first  # an image of its own
    assert b"base layer" not in second and b"test layer" in second  # the rest, thin
    assert w.has_image(IMAGE.id)
    assert set(w.tags) == {content_tag(IMAGE.id)}  # the piece image's tag is gone
    [report] = out.summary.workers
    assert report.load == "full"
    cache = tmp_path / ".shardrun" / "cache"
    assert sorted(p.name.split(".", 1)[1] for p in cache.glob("*.tar")) == [
        "piece0-1.tar",
        "tar",
        "thin1.tar",
    ]
    assert report.sent == sum(p.stat().st_size for p in cache.glob("*.*.tar"))


def test_a_refused_piece_calls_the_pieces_off_and_the_full_tarball_goes(
    tmp_path, fakes, monkeypatch
):
    monkeypatch.setattr(pieces, "LEAST", 1)
    builder = fakes("builder")
    # The first piece is refused compressed, then raw: not the codec, the piece.
    w = (
        fakes("w", has_image=False)
        .fail("load", EngineRefused, nth=1)
        .fail("load", EngineRefused, nth=2)
    )

    out = run(tmp_path, [worker(w)], [shard("a")], builder=builder)

    assert out.table() == [("a", Status.PASS, "w")]
    assert w.loads[-1] == IMAGE.tarball([content_tag(IMAGE.id)])  # the full one, at last
    assert w.has_image(IMAGE.id)
    [report] = out.summary.workers
    assert (report.load, report.codec) == ("full", "gzip")  # gzip was not what it refused
    assert set(w.tags) == {content_tag(IMAGE.id)}


def test_a_worker_holding_the_base_gets_a_thin_tarball_cut_from_the_save_stream(tmp_path, fakes):
    builder = fakes("builder")
    old = FakeImage.make(
        b"base layer", b"an older test layer", labels={"shardrun.project": PROJECT}
    )
    w = FakeEngine("w", images=[old])

    out = run(tmp_path, [worker(w)], [shard("a")], builder=builder)

    assert out.table() == [("a", Status.PASS, "w")]
    [report] = out.summary.workers
    assert report.load == "thin" and report.sent < len(IMAGE.tarball())
    [sent] = w.loads
    assert b"base layer" not in sent and b"test layer" in sent
    # No worker needed the full tarball, so none was written: only the thin one.
    cache = tmp_path / ".shardrun" / "cache"
    assert [p.name.split(".", 1)[1] for p in cache.glob("*.tar")] == ["thin1.tar"]
    assert [c.name for c in builder.calls].count("save") == 1
    w.stop_answering()


def test_a_failing_shard_is_a_result_and_is_not_moved(tmp_path, fakes):
    w1, w2 = fakes("w1"), fakes("w2")
    for fake in (w1, w2):
        fake.script("bad", exit_code=3, output=b"1 failed\n")

    out = run(tmp_path, [worker(w1), worker(w2)], [shard("bad"), shard("ok")])

    bad = out.result("bad")
    assert (bad.status, bad.exit_code, bad.attempt) == (Status.FAIL, 3, 1)
    assert out.result("ok").status is Status.PASS
    assert created(w1, w2).count("bad") == 1  # run once, on one worker
    assert not out.of(ShardRequeued) and not out.of(WorkerLost)
    assert out.summary.exit_code == 1
    assert Path(bad.log_path).read_bytes() == b"1 failed\n"


def test_a_worker_lost_while_loading_leaves_its_shards_to_the_others(tmp_path, fakes):
    good = fakes("good").script(seconds=0.1)  # the run lasts longer than the load
    bad = fakes("bad", has_image=False).delay("load", 0.05).fail("load", TransportError)

    out = run(tmp_path, [worker(good), worker(bad, 2)], [shard(n) for n in "abc"])

    assert out.table() == [(n, Status.PASS, "good") for n in "abc"]
    assert len(bad.called("load")) == 1 and bad.called("create") == []
    [lost] = out.of(WorkerLost)
    assert lost.worker == "bad" and lost.reason.startswith("could not get the image there")
    assert out.summary.lost_workers == ("bad",)
    assert out.summary.exit_code == 0


def test_a_transport_error_on_create_moves_the_shard_once_while_the_worker_answers(tmp_path, fakes):
    flaky = fakes("flaky").fail("create", TransportError("connection reset by peer"), nth=1)
    good = fakes("good").script(seconds=0.05)

    out = run(tmp_path, [worker(flaky), worker(good)], [shard(n) for n in "abc"])

    [requeued] = out.of(ShardRequeued)
    assert "worker flaky failed it" in requeued.reason and "reset by peer" in requeued.reason
    moved = out.result(requeued.name)
    assert (moved.status, moved.worker, moved.attempt) == (Status.PASS, "good", 1)
    assert [r.status for r in out.summary.results] == [Status.PASS] * 3
    assert flaky.called("ping")  # it was asked, and answered: one error is not a loss
    assert not out.of(WorkerLost) and out.summary.lost_workers == ()
    assert out.summary.exit_code == 0


def test_a_worker_that_stops_answering_mid_run_is_lost_and_its_shard_passes_elsewhere(
    tmp_path, fakes
):
    dying = fakes("dying").script(seconds=None)  # runs until the daemon dies under it
    good = fakes("good").script(seconds=0.05)

    async def kill_the_daemon(interrupt: anyio.Event) -> None:
        await until(lambda: bool(dying.running()))
        dying.stop_answering()

    out = run(
        tmp_path, [worker(dying), worker(good)], [shard(n) for n in "abc"], during=kill_the_daemon
    )

    [victim] = dying.started_shards()
    assert [(e.name, e.reason.split(":")[0]) for e in out.of(ShardRequeued)] == [
        (victim, "worker dying lost")
    ]
    assert [e.worker for e in out.of(WorkerLost)] == ["dying"]
    assert out.summary.lost_workers == ("dying",)
    assert out.table() == [(n, Status.PASS, "good") for n in "abc"]
    assert good.started_shards().count(victim) == 1
    assert out.summary.exit_code == 0


def test_an_engine_refusing_the_create_is_an_error_result_and_is_not_moved(tmp_path, fakes):
    w1, w2 = fakes("w1"), fakes("w2")
    for fake in (w1, w2):
        fake.fail(
            "create",
            EngineRefused("invalid mount config for type bind"),
            when=lambda request: request.shard.name == "bad",
        )

    out = run(tmp_path, [worker(w1), worker(w2)], [shard("bad"), shard("ok")])

    bad = out.result("bad")
    assert (bad.status, bad.worker_fault) == (Status.ERROR, False)
    assert "invalid mount config" in bad.detail
    assert out.result("ok").status is Status.PASS
    assert sum(c.args[0].shard.name == "bad" for f in (w1, w2) for c in f.called("create")) == 1
    assert not out.of(ShardRequeued) and not out.of(WorkerLost)
    assert out.summary.exit_code == 4


def test_an_interrupt_cancels_the_run_and_removes_every_container(tmp_path, fakes):
    w1, w2 = fakes("w1").script(seconds=None), fakes("w2").script(seconds=None)

    async def ctrl_c(interrupt: anyio.Event) -> None:
        await until(lambda: len(w1.running()) + len(w2.running()) == 3)
        interrupt.set()

    out = run(tmp_path, [worker(w1, 2), worker(w2, 1)], [shard(n) for n in "abcd"], during=ctrl_c)

    assert out.summary.interrupted and out.summary.exit_code == 130
    assert [r.status for r in out.summary.results] == [Status.CANCELLED] * 4
    assert {r.detail for r in out.summary.results} == {"the run was interrupted"}
    for fake in (w1, w2):
        assert fake.present == {}  # nothing left on the engines
        assert {c.args[0] for c in fake.called("remove")} >= {c.id for c in fake.history}
    assert sorted(created(w1, w2)) == ["a", "b", "c"]  # d never started


def test_an_interrupt_during_a_slow_load_ends_the_run_without_waiting_for_it(tmp_path, fakes):
    builder = fakes("builder")
    w = fakes("w", has_image=False).delay("load", 30)

    async def ctrl_c(interrupt: anyio.Event) -> None:
        await until(lambda: bool(w.called("load")))
        interrupt.set()

    began = time.monotonic()
    out = run(tmp_path, [worker(w)], [shard("a"), shard("b")], builder=builder, during=ctrl_c)

    assert time.monotonic() - began < 2
    assert out.summary.interrupted and out.summary.exit_code == 130
    assert [r.status for r in out.summary.results] == [Status.CANCELLED] * 2
    assert w.history == [] and not w.has_image(IMAGE.id)
    [report] = out.summary.workers
    assert (report.load, report.lost) == ("", "")


def test_a_shard_past_its_timeout_is_killed(tmp_path, fakes):
    w = fakes("w").script("slow", seconds=None, output=b"still going\n")

    out = run(tmp_path, [worker(w)], [shard("slow", timeout="200ms"), shard("ok")])

    slow = out.result("slow")
    assert (slow.status, slow.exit_code) == (Status.TIMEOUT, None)
    assert slow.detail == "killed after the 0.2s timeout"
    assert 0.2 <= slow.duration < 2
    [container] = [c for c in w.history if c.shard == "slow"]
    assert container.killed and [c.args[0] for c in w.called("kill")] == [container.id]
    assert out.result("ok").status is Status.PASS
    assert w.present == {}
    assert out.summary.exit_code == 1


def test_with_no_worker_left_the_rest_is_not_run(tmp_path, fakes):
    only = fakes("only").script(seconds=None)

    async def kill_the_daemon(interrupt: anyio.Event) -> None:
        await until(lambda: bool(only.running()))
        only.stop_answering()

    out = run(tmp_path, [worker(only)], [shard(n) for n in "abc"], during=kill_the_daemon)

    assert [(r.name, r.status) for r in out.summary.results] == [
        ("a", Status.NOT_RUN),
        ("b", Status.NOT_RUN),
        ("c", Status.NOT_RUN),
    ]
    assert {r.detail for r in out.summary.results} == {"no worker was left to run it"}
    assert [e.name for e in out.of(ShardRequeued)] == ["a"]  # requeued, and nobody took it
    assert out.summary.lost_workers == ("only",)
    assert out.summary.exit_code == 4
    assert not out.summary.interrupted


def test_a_secret_in_the_output_is_masked_in_the_log(tmp_path, fakes):
    secret = "hunter2-the-token"
    printed = f"token={secret}\nbye {secret}\n".encode()
    # Reads of 7 bytes: the secret arrives cut across several of them, and so do frames.
    w = fakes("w").script("s", output=[printed[:20], printed[20:]], read_size=7)

    out = run(
        tmp_path, [worker(w)], [shard("s", **{"secret-env": ["TOKEN"]})], secrets={"TOKEN": secret}
    )

    result = out.result("s")
    assert result.status is Status.PASS
    assert Path(result.log_path).read_bytes() == b"token=***\nbye ***\n"
    assert all(secret not in e.line for e in out.of(ShardOutput))
    [container] = w.history
    assert container.request.secrets == {"TOKEN": secret}  # the container got it


def test_a_lost_workers_container_writes_nothing_into_the_log_of_the_rerun(tmp_path, fakes):
    # A daemon going away answers some calls and resets others (schedule._FAULTS): here
    # two creates in a row fail, so the worker is lost while a shard prints on it, and
    # the removal of that container fails too, so it runs on. The reader thread of its
    # output, abandoned by the cancellation, must not write on into <shard>.log, which
    # the rerun elsewhere (attempt 1 again) writes too.
    going = fakes("going").script(output=[b"from going\n"] * 200, pace=0.01, seconds=None)
    going.delay("create", 0.05).fail("create", nth=2).fail("create", nth=3)
    going.fail("remove", nth=1)  # the final reap (the second removal) gets it
    good = fakes("good").script(output=b"from good\n", seconds=0.1)

    out = run(tmp_path, [worker(going, 2), worker(good)], [shard(n) for n in "abcd"])

    [victim] = going.started_shards()
    assert out.result(victim).worker == "good"
    assert Path(out.result(victim).log_path).read_bytes() == b"from good\n"


def test_a_run_that_loses_a_required_worker_exits_4_though_every_shard_passed(tmp_path, fakes):
    a, b = fakes("a"), fakes("b", has_image=False)
    a.script("*", seconds=0.5)  # still running when b's load is refused
    b.fail("load", EngineRefused("refused: not a tarball this engine takes"))
    needed = worker(b)
    needed.required = True

    out = run(tmp_path, [worker(a), needed], [shard("x"), shard("y")], builder=a)

    assert out.table() == [("x", Status.PASS, "a"), ("y", Status.PASS, "a")]
    assert out.summary.lost_required == ("b",) and out.summary.exit_code == 4
    assert lost_line(out.summary).startswith(
        "1 of 2 workers lost: b (required): could not get the image there"
    )


def test_once_times_are_recorded_the_run_announces_each_shards_expected_seconds(tmp_path, fakes):
    w1 = fakes("w1").script(seconds=0.1)
    shards = [shard("s1"), shard("s2")]

    first = run(tmp_path, [worker(w1, 2)], shards)
    second = run(tmp_path, [worker(w1, 2)], shards)

    [planned] = first.of(RunPlanned)
    assert (planned.expected, planned.slots) == ((), 2)  # nothing recorded yet: no end shown
    [planned] = second.of(RunPlanned)
    assert planned.slots == 2 and len(planned.expected) == 2
    assert all(0.1 <= seconds < 5 for seconds in planned.expected)  # the first run's times
