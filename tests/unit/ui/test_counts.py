"""One of a thing is said in the singular wherever a count is shown (issue 26: "1 shards"):
the plain lines, the live frame, the end-of-run summary and the reports."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from shardrun.model import events as ev
from shardrun.model.results import ShardResult, Status
from shardrun.report.html import to_html
from shardrun.report.markdown import to_markdown
from shardrun.report.summary import RunSummary, WorkerReport, lost_line, totals_line
from shardrun.ui.live import render
from shardrun.ui.plain import plain_line
from shardrun.ui.summary import artifact_lines, print_summary, worker_lines
from shardrun.ui.view_state import ViewState


def one_shard_run(**extra) -> RunSummary:
    result = ShardResult(
        name="only",
        status=Status.PASS,
        exit_code=0,
        started=1.0,
        finished=3.0,
        worker="w1",
        slot=1,
        log_path=None,
        artifacts=("/out/only/artifacts/a.txt",),
    )
    workers = (
        WorkerReport(name="w1", url="unix:///a", slots=1, load="none"),
        WorkerReport(name="w2", url="unix:///b", slots=1, lost="reset"),
    )
    return RunSummary("r1", "p", None, 1.0, 3.0, (result,), workers=workers, **extra)


def test_plain_lines_say_one_shard_one_slot_one_step() -> None:
    planned = ev.RunPlanned(run_id="r1", shards=("a",), run_dir="runs/r1")
    assert plain_line(planned) == "run      r1: 1 shard, logs in runs/r1"
    assert plain_line(ev.WorkerReady(worker="w", slots=1)) == "worker   w: 1 slot"
    built = ev.BuildFinished(
        image_id="sha256:0123456789abcdef", duration=1.0, cached_steps=1, total_steps=1
    )
    assert plain_line(built) == "built    0123456789ab in 1.0s (1/1 step cached)"


def test_the_summary_and_its_lines_say_one_shard_one_worker_one_file() -> None:
    summary = one_shard_run()
    assert totals_line(summary).startswith("1 shard: 1 pass in ")
    assert lost_line(summary).startswith("1 of 2 workers lost")
    assert worker_lines(summary) == [
        "worker w1: 1 slot, image already there, ran 1 shard",
        "worker w2: LOST (reset)",
    ]
    assert artifact_lines(summary) == ["artifacts of only: 1 file in /out/only/artifacts"]
    out = io.StringIO()
    print_summary(Console(file=out, width=200, color_system=None), summary, [])
    assert "1 shards" not in out.getvalue() and "1 shard: 1 pass" in out.getvalue()


def test_reports_say_one_shard_and_one_step(tmp_path: Path) -> None:
    build = {"started": 0.0, "finished": 1.0, "cached_steps": 1, "total_steps": 1}
    summary = one_shard_run(build=build)
    assert "\n1 shard: 1 pass in " in to_markdown(summary)
    page = to_html(summary, tmp_path)
    assert "1 shard: 1 pass" in page and "1/1 step cached" in page
    assert "1 shards" not in page and "1 steps" not in page


def test_the_live_frame_says_one_shard_and_one_slot() -> None:
    state = ViewState()
    state.apply(ev.WorkerReady(worker="w", slots=1))
    state.apply(ev.RunPlanned(run_id="r1", shards=("a",), run_dir="runs/r1", at=100.0))
    console = Console(file=io.StringIO(), width=100, height=1000, color_system=None)
    console.print(render(state, now=100.0, height=3))  # collapsed: the totals line shows
    text = console.file.getvalue()
    assert "Worker w: 1 slot" in text
    assert "1 shard: 0 passed" in text
