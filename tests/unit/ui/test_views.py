"""shardrun.ui and shardrun.view_state: plain lines, the folded view state, the live frame."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from shardrun.model import events as ev
from shardrun.model.results import ShardResult, Status
from shardrun.ui.live import LiveView, render
from shardrun.ui.plain import PlainView, clock, plain_line
from shardrun.ui.view_state import ViewState, expected_end


def result(
    name: str, status: Status, code: int | None = None, took: float | None = None, detail: str = ""
) -> ShardResult:
    return ShardResult(
        name=name,
        status=status,
        exit_code=code,
        started=None if took is None else 1000.0,
        finished=None if took is None else 1000.0 + took,
        worker="local",
        slot=1,
        log_path=None,
        detail=detail,
    )


# --- plain lines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            ev.ShardFinished(result=result("unit-1", Status.PASS, 0, 12.34)),
            "PASS     unit-1 in 12.3s",
        ),
        (
            ev.ShardFinished(result=result("unit-2", Status.FAIL, 2, 5.0)),
            "FAIL     unit-2 in 5.0s (exit 2)",
        ),
        (
            ev.ShardFinished(
                result=result("slow", Status.TIMEOUT, None, 60.0, "killed after the 60s timeout")
            ),
            "TIMEOUT  slow in 60.0s: killed after the 60s timeout",
        ),
        (
            ev.ShardFinished(result=result("docs", Status.NOT_RUN, detail="no worker left")),
            "NOT RUN  docs: no worker left",
        ),
        (ev.BuildStarted(dockerfile="Dockerfile.test", context="."), "build    Dockerfile.test"),
        (
            ev.BuildStep(digest="d", name="[2/3] RUN pip install .", state="started"),
            "started  [2/3] RUN pip install .",
        ),
        (
            ev.BuildStep(digest="d", name="[1/3] FROM python", state="cached"),
            "cached   [1/3] FROM python",
        ),
        (
            ev.BuildStep(digest="d", name="[3/3] RUN false", state="error", error="exit code: 1"),
            "error    [3/3] RUN false: exit code: 1",
        ),
        (ev.BuildLog(name="RUN make", line="cc -o x x.c"), "  |      cc -o x x.c"),
        (
            ev.BuildFinished(
                image_id="sha256:0123456789abcdef", duration=12.34, cached_steps=3, total_steps=5
            ),
            "built    0123456789ab in 12.3s (3/5 steps cached)",
        ),
        (
            ev.ArtifactReady(path=".shardrun/cache/img.tar", size=1_500_000, reused=False),
            "image    .shardrun/cache/img.tar (1.5 MB, saved)",
        ),
        (
            ev.ArtifactReady(path="img.tar", size=999, reused=True),
            "image    img.tar (999 B, reused)",
        ),
        (ev.WorkerReady(worker="local", slots=4), "worker   local: 4 slots"),
        (
            ev.WorkerReady(worker="local", slots=4, detail="(docker 27.1, 8 CPUs)"),
            "worker   local: 4 slots (docker 27.1, 8 CPUs)",
        ),
        (
            ev.WorkerTransfer(worker="ci-2", sent=2_000_000, total=2_000_000, mode="thin"),
            "loaded   ci-2: thin, 2.0 MB sent",
        ),
        (
            ev.WorkerLost(worker="ci-2", reason="connection refused"),
            "LOST     ci-2: connection refused",
        ),
        (
            ev.RunPlanned(run_id="r1", shards=("a", "b"), run_dir=".shardrun/runs/r1"),
            "run      r1: 2 shards, logs in .shardrun/runs/r1",
        ),
        (ev.ShardStarted(name="unit-1", worker="local", slot=3), "start    unit-1 on local/3"),
        (
            ev.ShardRequeued(name="unit-1", reason="worker ci-2 lost"),
            "requeue  unit-1: worker ci-2 lost",
        ),
    ],
)
def test_plain_line(event: ev.Event, line: str):
    assert plain_line(event) == line


@pytest.mark.parametrize(
    "event",
    [
        ev.ShardOutput(name="unit-1", line="collecting ..."),  # live view only
        ev.WorkerTransfer(worker="ci-2", sent=1, total=2, mode="full"),  # in progress
    ],
)
def test_plain_line_skips_live_only_events(event: ev.Event):
    assert plain_line(event) is None


def test_plain_view_prints_timestamped_lines_without_escapes():
    out = io.StringIO()
    with PlainView(out) as view:
        view.handle(ev.ShardStarted(name="unit-1", worker="local", slot=1))
        view.handle(ev.ShardOutput(name="unit-1", line="ignored"))
        view.handle(ev.ShardFinished(result=result("unit-1", Status.FAIL, 1, 2.0)))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines)
    assert lines[0].endswith(" start    unit-1 on local/1")
    assert lines[1].endswith(" FAIL     unit-1 in 2.0s (exit 1)")
    assert "\x1b" not in out.getvalue()


# --- ViewState -----------------------------------------------------------------------------


def planned(*names: str) -> ViewState:
    state = ViewState()
    state.apply(ev.RunPlanned(run_id="r1", shards=names, run_dir="runs/r1", at=100.0))
    return state


def test_run_planned_makes_queued_rows_in_order():
    state = planned("a", "b", "c")
    assert state.run_id == "r1"
    assert [(s.name, s.state) for s in state.shards.values()] == [
        ("a", "queued"),
        ("b", "queued"),
        ("c", "queued"),
    ]
    assert state.finished_count == 0


def test_shard_started_output_and_finished_fold_into_its_row():
    state = planned("a", "b")
    state.apply(ev.ShardStarted(name="a", worker="ci-2", slot=2, at=101.0))
    state.apply(ev.ShardOutput(name="a", line="tests/test_x.py ...", at=102.0))
    state.apply(ev.ShardOutput(name="a", line="", at=103.0))  # blank lines keep the last one
    shard = state.shards["a"]
    assert (shard.state, shard.worker, shard.slot, shard.started) == ("running", "ci-2", 2, 101.0)
    assert shard.last_line == "tests/test_x.py ..."

    done = result("a", Status.FAIL, 1, 9.0)
    state.apply(ev.ShardFinished(result=done, at=110.0))
    assert (shard.state, shard.result, shard.finished) == ("FAIL", done, 110.0)
    assert state.finished_count == 1
    assert state.shards["b"].state == "queued"


def test_a_requeued_shard_is_queued_again_and_not_finished():
    state = planned("a")
    state.apply(ev.ShardStarted(name="a", worker="ci-2", slot=1, at=101.0))
    state.apply(ev.ShardFinished(result=result("a", Status.ERROR, detail="gone"), at=102.0))
    state.apply(ev.ShardRequeued(name="a", reason="worker ci-2 lost", at=102.0))
    assert state.shards["a"].state == "queued"
    assert state.finished_count == 0
    state.apply(ev.ShardStarted(name="a", worker="local", slot=1, at=103.0))
    assert (state.shards["a"].state, state.shards["a"].finished) == ("running", None)


def test_workers_fold_ready_transfer_and_lost():
    state = ViewState()
    state.apply(ev.WorkerReady(worker="ci-2", slots=4))
    state.apply(ev.WorkerTransfer(worker="ci-2", sent=10, total=20, mode="thin"))
    state.apply(ev.WorkerLost(worker="ci-2", reason="connection refused"))
    worker = state.workers["ci-2"]
    assert (worker.slots, worker.sent, worker.total, worker.mode, worker.lost) == (
        4,
        10,
        20,
        "thin",
        "connection refused",
    )


# --- the live frame ------------------------------------------------------------------------


def text_of(renderable) -> str:
    console = Console(file=io.StringIO(), width=120, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_render_shows_rows_elapsed_time_last_line_and_progress():
    state = planned("unit-1", "unit-2", "unit-3", "docs")
    state.apply(ev.ShardStarted(name="unit-1", worker="local", slot=1, at=100.0))
    state.apply(ev.ShardStarted(name="unit-2", worker="local", slot=2, at=100.0))
    state.apply(ev.ShardStarted(name="unit-3", worker="ci-2", slot=1, at=105.0))
    state.apply(ev.ShardFinished(result=result("unit-1", Status.PASS, 0, 10.0), at=110.0))
    state.apply(ev.ShardFinished(result=result("unit-2", Status.FAIL, 1, 11.0), at=111.0))
    state.apply(ev.ShardOutput(name="unit-3", line="tests/test_slow.py ....", at=106.0))

    text = text_of(render(state, now=117.5))
    rows = {line.split()[0]: line for line in text.splitlines() if line.split()}
    assert rows["unit-1"].split()[1:4] == ["PASS", "10.0s", "local/1"]
    assert rows["unit-2"].split()[1:4] == ["FAIL", "11.0s", "local/2"]
    # Still running: the time counts from its start to `now`.
    assert rows["unit-3"].split()[1:4] == ["running", "12.5s", "ci-2/1"]
    assert rows["unit-3"].endswith("tests/test_slow.py ....")
    assert rows["docs"].split()[1:] == ["queued"]
    assert "2/4 done, 1 failed" in text
    assert "\x1b" not in text


def test_render_before_and_during_the_build():
    assert "Build  waiting" in text_of(render(ViewState(), now=0.0))
    state = ViewState()
    state.apply(ev.BuildStarted(dockerfile="Dockerfile", context=".", at=100.0))
    state.apply(ev.BuildStep(digest="d", name="[2/3] RUN make", state="started", at=101.0))
    assert "Build    7.5s [2/3] RUN make" in text_of(render(state, now=107.5))


def test_render_shows_a_lost_worker():
    state = ViewState()
    state.apply(ev.WorkerReady(worker="ci-2", slots=4))
    state.apply(ev.WorkerLost(worker="ci-2", reason="connection refused"))
    assert "Worker ci-2 LOST: connection refused" in text_of(render(state, now=0.0))


def test_render_shows_how_each_worker_gets_the_image():
    state = ViewState()
    for name in ("local", "box2", "box3"):
        state.apply(ev.WorkerReady(worker=name, slots=2))
    state.apply(ev.WorkerTransfer(worker="local", sent=0, total=0, mode="none"))
    state.apply(ev.WorkerTransfer(worker="box2", sent=1_500_000, total=3_000_000, mode="full"))
    state.apply(ev.WorkerTransfer(worker="box3", sent=20_500, total=20_500, mode="thin"))
    text = text_of(render(state, now=0.0))
    assert "Worker local: 2 slots, image already there" in text
    assert "Worker box2: 2 slots, full load 1.5 MB of 3.0 MB" in text
    assert "Worker box3: 2 slots, thin load of 20.5 KB done" in text


def test_a_finished_row_shows_the_containers_run_time_as_the_summary_does():
    state = planned("unit-1")
    state.apply(ev.ShardStarted(name="unit-1", worker="local", slot=1, at=100.0))
    # created and started 0.7 s after the slot took it; the container ran 3.0 s
    state.apply(ev.ShardFinished(result=result("unit-1", Status.PASS, 0, 3.0), at=103.7))
    row = next(ln for ln in text_of(render(state, now=200.0)).splitlines() if "unit-1" in ln)
    assert row.split()[1:3] == ["PASS", "3.0s"]


def test_a_reused_shard_shows_pass_and_reused_where_its_worker_would_be():
    from dataclasses import replace

    state = planned("unit-1")
    reused = replace(
        result("unit-1", Status.PASS, 0, detail="reused from run r1"),
        worker=None,
        slot=None,
        reused_from="r1",
    )
    state.apply(ev.ShardFinished(result=reused, at=100.0))
    row = next(ln for ln in text_of(render(state, now=101.0)).splitlines() if "unit-1" in ln)
    assert row.split()[1] == "PASS" and "reused" in row
    assert plain_line(ev.ShardFinished(result=reused)) == "PASS     unit-1: reused from run r1"


# --- the live frame in a terminal too short for one row per shard --------------------------


def frame(renderable, width: int = 100) -> list[str]:
    console = Console(file=io.StringIO(), width=width, height=1000, color_system=None)
    console.print(renderable)
    return console.file.getvalue().splitlines()


def big_run(total: int = 200, passed: int = 0, failed: int = 0, running: int = 0) -> ViewState:
    """Shards s000.. in order: `passed`, then `failed` finish one a second (the last failure is
    the newest), then `running` start one a second (the first has run longest); the rest queue.
    Above the table: the build line and one worker line."""
    state = planned(*(f"s{i:03}" for i in range(total)))
    state.apply(
        ev.BuildFinished(
            image_id="sha256:0123456789abcdef", duration=12.0, cached_steps=0, total_steps=0
        )
    )
    state.apply(ev.WorkerReady(worker="local", slots=8))
    names = iter(state.shards)
    at = 1000.0
    for status, count in ((Status.PASS, passed), (Status.FAIL, failed)):
        for _ in range(count):
            name, at = next(names), at + 1
            state.apply(ev.ShardStarted(name=name, worker="local", slot=1, at=at - 0.5))
            state.apply(ev.ShardFinished(result=result(name, status, 1, 0.5), at=at))
    for _ in range(running):
        name, at = next(names), at + 1
        state.apply(ev.ShardStarted(name=name, worker="local", slot=1, at=at))
    return state


def names_in(lines: list[str]) -> list[str]:
    return [line.split()[0] for line in lines if re.match(r"s\d\d\d ", line)]


def test_a_run_that_fits_the_height_renders_every_row_as_without_one():
    state = big_run(total=10, passed=3, failed=1, running=2)
    full = frame(render(state, now=2000.0))
    assert len(full) == 2 + 1 + 10 + 1  # build, worker, header, a row per shard, the bar
    assert frame(render(state, now=2000.0, height=len(full))) == full
    assert frame(render(state, now=2000.0, height=len(full) - 1)) != full


def test_200_shards_in_30_rows_show_totals_running_failures_and_the_bar():
    state = big_run(passed=120, failed=2, running=8)
    lines = frame(render(state, now=2000.0, height=30))
    assert len(lines) <= 30
    assert lines[0].startswith("Build  done")
    assert lines[1] == "Worker local: 8 slots"
    assert lines[2] == "200 shards: 120 passed, 2 failed, 8 running, 70 queued"
    assert lines[3].split() == ["shard", "status", "time", "worker", "last", "line"]
    # the running shards, longest running first, then the failures, newest first
    assert names_in(lines) == [f"s{i:03}" for i in range(122, 130)] + ["s121", "s120"]
    assert lines[4].split()[1:4] == ["running", "877.0s", "local/1"]  # started at 1123
    assert lines[-1].endswith("122/200 done, 2 failed")
    assert len(lines) == 2 + 1 + 1 + 8 + 2 + 1


def test_failures_that_do_not_fit_are_dropped_oldest_first():
    state = big_run(passed=100, failed=40, running=8)
    lines = frame(render(state, now=2000.0, height=30))
    assert len(lines) == 30
    # 30 = build, worker, totals, header, 8 running, the bar: room for the 17 newest failures
    shown = names_in(lines)
    assert shown[:8] == [f"s{i:03}" for i in range(140, 148)]
    assert shown[8:] == [f"s{i:03}" for i in range(139, 122, -1)]
    assert all(ln.split()[1] == "FAIL" for ln in lines if ln.split()[0] in shown[8:])
    assert not any("more running" in line for line in lines)


def test_running_rows_that_do_not_fit_collapse_into_a_count_and_push_out_failures():
    state = big_run(passed=10, failed=5, running=40)
    lines = frame(render(state, now=2000.0, height=20))
    assert len(lines) == 20
    assert lines[2] == "200 shards: 10 passed, 5 failed, 40 running, 145 queued"
    # build, worker, totals, header, the bar and the "more" line leave 14 running rows
    assert names_in(lines) == [f"s{i:03}" for i in range(15, 29)]
    assert lines[-2] == "… and 26 more running"
    assert lines[-1].endswith("15/200 done, 5 failed")


def test_the_totals_line_counts_every_state():
    state = big_run(total=12, passed=2, failed=1, running=2)
    for name, status in (
        ("s009", Status.TIMEOUT),
        ("s010", Status.ERROR),
        ("s011", Status.CANCELLED),
        ("s008", Status.NOT_RUN),
    ):
        state.apply(ev.ShardFinished(result=result(name, status), at=2000.0))
    lines = frame(render(state, now=2000.0, height=10))
    assert lines[2] == (
        "12 shards: 2 passed, 3 failed, 2 running, 3 queued, 1 cancelled, 1 not run"
    )
    # TIMEOUT and ERROR are failures too; same-time failures keep the plan's order
    assert names_in(lines) == ["s003", "s004", "s009", "s010", "s002"]


@pytest.mark.parametrize("width", [40, 100])
def test_a_collapsed_frame_never_outgrows_the_terminal(width: int):
    state = big_run(passed=100, failed=30, running=20)
    state.build_done = None
    state.apply(ev.BuildStarted(dockerfile="Dockerfile", context=".", at=100.0))
    state.apply(
        ev.BuildStep(digest="d", name="[2/3] RUN " + "pip install x " * 20, state="started")
    )  # would wrap at this width
    state.apply(ev.ArtifactReady(path="/a/long/path/" * 10 + "img.tar", size=10, reused=True))
    state.apply(ev.ShardOutput(name="s130", line="collecting " * 30))
    # the smallest frame: build, image, worker, totals and the bar
    for height in range(5, 80):
        lines = frame(render(state, now=2000.0, height=height), width=width)
        assert len(lines) <= height, height
        assert any(line.startswith("200 shards: ") for line in lines), height
        assert lines[-1].startswith("━") and "130/200 done" in lines[-1], height


def test_the_live_view_reads_the_terminal_height_on_every_refresh():
    console = Console(file=io.StringIO(), width=100, height=40, color_system=None)
    view = LiveView(console)  # not entered: nothing is drawn, the frame is only built
    for event in (
        ev.WorkerReady(worker="local", slots=8),
        ev.RunPlanned(run_id="r1", shards=tuple(f"s{i:03}" for i in range(60)), run_dir="runs/r1"),
        ev.ShardStarted(name="s000", worker="local", slot=1),
    ):
        view.handle(event)
    assert len(frame(view._live.renderable)) <= 40
    console.size = (100, 12)  # the terminal was resized
    lines = frame(view._live.renderable)
    assert len(lines) <= 12
    assert "60 shards: 0 passed, 0 failed, 1 running, 59 queued" in lines


# --- the expected end, once times are recorded (issue 26) ------------------------------------


def timed(expected: dict[str, float], slots: int = 2) -> ViewState:
    state = ViewState()
    state.apply(
        ev.RunPlanned(
            run_id="r1",
            shards=tuple(expected),
            run_dir="runs/r1",
            expected=tuple(expected.values()),
            slots=slots,
            at=100.0,
        )
    )
    return state


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (45.2, "45s"),
        (59.6, "1m00s"),
        (80.0, "1m20s"),
        (3599.0, "59m59s"),
        (7500.0, "2h05m"),
    ],
)
def test_clock(seconds: float, text: str):
    assert clock(seconds) == text


@pytest.mark.parametrize(
    ("left", "slots", "end"),
    [
        ([], 4, 0.0),
        ([30.0, 30.0, 30.0, 30.0], 2, 60.0),  # the work spread over the slots
        ([100.0, 10.0], 4, 100.0),  # but no sooner than the longest shard alone
        ([10.0, 10.0], 0, 20.0),  # slots unknown: one
    ],
)
def test_expected_end(left: list[float], slots: int, end: float):
    assert expected_end(left, slots) == end


def test_no_expected_end_without_recorded_times():
    state = planned("a", "b")
    assert state.seconds_left(list(state.shards.values()), now=100.0) is None
    progress = text_of(render(state, now=100.0)).splitlines()[-1]
    assert "left" not in progress


def test_the_expected_end_counts_queued_shards_whole_and_running_ones_less_their_run():
    state = timed({"a": 60.0, "b": 40.0, "c": 20.0, "d": 30.0}, slots=2)

    def shards() -> list:
        return list(state.shards.values())

    assert state.seconds_left(shards(), now=100.0) == 75.0  # 150 s of work on 2 slots
    state.apply(ev.ShardStarted(name="a", worker="w", slot=1, at=100.0))
    state.apply(ev.ShardStarted(name="b", worker="w", slot=2, at=100.0))
    # 10 s on: a has 50 s left, b 30 s, c and d queued: 130 s on 2 slots
    assert state.seconds_left(shards(), now=110.0) == 65.0
    state.apply(ev.ShardFinished(result=result("b", Status.PASS, 0, 40.0), at=140.0))
    state.apply(ev.ShardStarted(name="c", worker="w", slot=2, at=140.0))
    state.apply(ev.ShardFinished(result=result("c", Status.PASS, 0, 20.0), at=160.0))
    state.apply(ev.ShardStarted(name="d", worker="w", slot=2, at=160.0))
    # a alone has 0 s left by its record, d 25 s: the longest running shard bounds it
    assert state.seconds_left(shards(), now=165.0) == 25.0
    state.apply(ev.ShardFinished(result=result("a", Status.PASS, 0, 70.0), at=170.0))
    state.apply(ev.ShardFinished(result=result("d", Status.PASS, 0, 30.0), at=190.0))
    assert state.seconds_left(shards(), now=190.0) is None  # nothing left


def test_a_lost_worker_leaves_fewer_slots_for_the_expected_end():
    state = timed({"a": 60.0, "b": 60.0, "c": 60.0, "d": 60.0}, slots=4)
    for worker in ("w1", "w2"):
        state.apply(ev.WorkerReady(worker=worker, slots=2))
    assert state.seconds_left(list(state.shards.values()), now=100.0) == 60.0
    state.apply(ev.WorkerLost(worker="w2", reason="reset"))
    assert state.seconds_left(list(state.shards.values()), now=100.0) == 120.0


def test_the_live_frame_shows_the_expected_end_beside_the_progress():
    state = timed({"unit-1": 100.0, "unit-2": 60.0}, slots=2)
    state.apply(ev.ShardStarted(name="unit-1", worker="local", slot=1, at=100.0))
    state.apply(ev.ShardStarted(name="unit-2", worker="local", slot=2, at=100.0))
    progress = text_of(render(state, now=120.0)).splitlines()[-1]
    assert progress.endswith("0/2 done, ~1m20s left")
    # In a short terminal too: the bar's line is always drawn.
    lines = frame(render(state, now=120.0, height=4))
    assert lines[-1].endswith("0/2 done, ~1m20s left")


def test_the_plain_run_line_says_when_the_run_is_expected_to_end():
    event = ev.RunPlanned(
        run_id="r1", shards=("a", "b", "c"), run_dir="runs/r1", expected=(60.0, 30.0, 30.0), slots=2
    )
    assert plain_line(event) == "run      r1: 3 shards, expected ~1m00s, logs in runs/r1"


def test_expected_times_that_do_not_match_the_shards_are_ignored():
    state = ViewState()
    state.apply(
        ev.RunPlanned(run_id="r1", shards=("a", "b"), run_dir="runs/r1", expected=(60.0,), slots=2)
    )
    assert state.seconds_left(list(state.shards.values()), now=0.0) is None
