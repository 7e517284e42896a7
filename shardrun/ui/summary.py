"""The end of a command in the terminal: the summary table and its notes, the workers table."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from shardrun.model.results import FAILED_TESTS
from shardrun.model.sizes import transfer_text
from shardrun.model.text import counted, one_line
from shardrun.report import junit
from shardrun.report.github import github_annotations
from shardrun.report.summary import (
    RecordedCases,
    RunSummary,
    lost_line,
    summary_rows,
    totals_line,
)
from shardrun.ui.plain import STATUS_STYLE, short_id


def workers_table(
    rows: Sequence[Any], image_id: str | None, links: dict[str, str] | None = None
) -> Table:
    """`rows`: run.inventory's WorkerRow (a stage's type, which a front end may not
    import); `links`: per URL, the last transfer's codec and rate, as `workers` shows them."""
    image = short_id(image_id) if image_id else "none built yet"
    table = Table(title=f"workers (image {image})", title_justify="left")
    columns = ("worker", "url", "status", "engine", "CPUs", "slots", "last load", "has image")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        link = (links or {}).get(row.url, "")
        if not row.reachable:
            table.add_row(
                row.name, row.url, Text("unreachable", style="red"), row.error, "", "", link, ""
            )
            continue
        has = {True: "yes", False: "no", None: "-"}[row.has_image]
        table.add_row(
            row.name,
            row.url,
            Text("ok", style="green"),
            row.version,
            str(row.cpus),
            str(row.slots),
            link,
            has,
        )
    return table


def worker_lines(summary: RunSummary) -> list[str]:
    """One line per worker: how the image got there, how many shards it ran, or LOST."""
    ran: dict[str, int] = {}
    for result in summary.results:
        if result.worker:
            ran[result.worker] = ran.get(result.worker, 0) + 1
    lines = []
    for w in summary.workers:
        if w.lost:
            lines.append(f"worker {w.name}: LOST ({w.lost})")
            continue
        load = {"none": "image already there", "thin": "thin load", "full": "full load"}
        how = load.get(w.load, "no image")
        if w.load in ("thin", "full"):
            how += " " + transfer_text(w.sent, w.codec, w.wire, w.load_seconds, w.full_size)
        lines.append(
            f"worker {w.name}: {counted(w.slots, 'slot')}, {how}, ran {counted(ran.get(w.name, 0), 'shard')}"
        )
    return lines


def compression_lines(summary: RunSummary) -> list[str]:
    """What was compressed for the workers, a line a codec: each layer once, whatever the
    number of workers and archives that got it."""
    by_codec: dict[str, list[Mapping[str, Any]]] = {}
    for part in summary.compression:
        by_codec.setdefault(part["codec"], []).append(part)
    lines = []
    for codec, parts in by_codec.items():
        raw, packed = sum(p["raw"] for p in parts), sum(p["compressed"] for p in parts)
        cpu = sum(p["cpu"] for p in parts)
        lines.append(
            f"compressed for the workers, each layer once: {transfer_text(raw, codec, packed)}, "
            f"{cpu:.1f}s of CPU"
        )
    return lines


def kept_lines(summary: RunSummary) -> list[str]:
    """Each kept container, and the commands to look inside it (a stopped container takes
    no exec: commit it, then run a shell in the copy)."""
    urls = {w.name: w.url for w in summary.workers}
    lines = []
    for r in summary.results:
        if r.kept:
            docker = f"docker --host {urls.get(r.worker or '', '')}"
            image = f"shardrun-kept:{r.name}"
            lines.append(
                f"kept {r.name}: container {r.kept} on {r.worker}; look inside with: "
                f"{docker} commit {r.kept} {image} && "
                f"{docker} run --rm -it --entrypoint sh {image}"
            )
    return lines


def failing_case_lines(summary: RunSummary, recorded: RecordedCases | None = None) -> list[str]:
    """The failing test cases of each failed shard that wrote JUnit (10 at most each):
    as `recorded` in a report, else from the shards' JUnit files."""
    lines = []
    for r in summary.results:
        if r.status in FAILED_TESTS:
            if recorded is None:
                shown, total = junit.failing_cases(r)
            else:
                found, total = recorded.failing.get(r.name, ((), 0))
                shown = list(found)
            if shown:
                more = f" (and {total - len(shown)} more)" if total > len(shown) else ""
                lines.append(f"failing in {r.name}: {', '.join(shown)}{more}")
    return lines


def artifact_lines(summary: RunSummary) -> list[str]:
    """Where each shard's copied files are, and what was not copied."""
    lines = []
    for r in summary.results:
        if r.artifacts:
            folder = os.path.commonpath([os.path.dirname(p) for p in r.artifacts])
            lines.append(f"artifacts of {r.name}: {counted(len(r.artifacts), 'file')} in {folder}")
        if r.artifacts_note:
            lines.append(f"artifacts of {r.name}: {r.artifacts_note}")
    return lines


def print_summary(
    console: Console, summary: RunSummary, reports: list, recorded: RecordedCases | None = None
) -> None:
    """`recorded`: the test cases as a report has them (`show`), instead of the JUnit files."""
    table = Table(title=f"shardrun {summary.run_id}", title_justify="left")
    for column in ("shard", "status", "duration", "exit", "worker", "log"):
        table.add_column(column, overflow="fold")
    for row in summary_rows(list(summary.results)):
        name, status, *rest = (one_line(cell) for cell in row)
        # Text, not markup: a name or detail may come from a report made elsewhere, and
        # "[/]" in it would be rich's markup error (issue 25).
        table.add_row(
            Text(name), Text(status, style=STATUS_STYLE.get(status, "")), *map(Text, rest)
        )
    console.print(table)
    if len(summary.workers) > 1 or summary.lost_workers:
        for line in worker_lines(summary):
            console.print(line, highlight=False, markup=False)
    for line in compression_lines(summary):
        console.print(line, highlight=False, markup=False)
    # Not wrapped: these hold paths and commands to copy.
    # One line each: file names and test case names are what a test chose.
    failing = failing_case_lines(summary, recorded)
    for line in artifact_lines(summary) + failing + kept_lines(summary):
        console.print(one_line(line), highlight=False, soft_wrap=True, markup=False)
    verdict = (
        "[green]passed[/]"
        if summary.exit_code == 0
        else "[yellow]interrupted[/]"
        if summary.interrupted
        else "[red]failed[/]"
    )
    lost = lost_line(summary)
    console.print(
        f"{totals_line(summary, None if recorded is None else recorded.flaky)}: {verdict} "
        f"(exit {summary.exit_code})" + (f"; {escape(one_line(lost))}" if lost else ""),
        highlight=False,
    )
    for path in reports:
        console.print(f"report: {path}", highlight=False, markup=False)


def print_outcome(console: Console, summary: RunSummary, reports: list) -> None:
    """The end of a run, or of a merged one: the summary, then on GitHub Actions its
    annotations (fenced and capped: report/github.py)."""
    print_summary(console, summary, reports)
    if os.environ.get("GITHUB_ACTIONS") == "true" and (notes := github_annotations(summary)):
        print("\n".join(notes), flush=True)
