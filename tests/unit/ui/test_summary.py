"""ui/summary: the end of a run on the terminal. Its texts may come from a report made on
another machine (`merge`, `show`): they are printed as text, never read as rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from shardrun.model.results import ShardResult, Status
from shardrun.report.summary import RunSummary, WorkerReport
from shardrun.ui.summary import print_summary


def test_markup_in_names_details_and_workers_is_printed_as_written() -> None:
    result = ShardResult(
        name="a",
        status=Status.ERROR,
        exit_code=None,
        started=1.0,
        finished=2.0,
        worker="[/]w",
        slot=1,
        log_path="[bold]x.log",
        detail="boom [/] [red]x",
    )
    workers = (
        WorkerReport(name="[/]w", url="tcp://[/]", slots=1, lost="reset [/]"),
        WorkerReport(name="[b]other", url="unix:///s", slots=1),
    )
    summary = RunSummary("r1", "p", None, 1.0, 2.0, (result,), workers=workers)
    out = io.StringIO()
    print_summary(Console(file=out, width=200, color_system=None), summary, [])
    text = out.getvalue()
    assert "[/]w" in text and "[b]other" in text and "reset [/]" in text
    assert "[bold]x.log" in text
