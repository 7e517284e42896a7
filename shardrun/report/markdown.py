"""summary.md: the run for a CI page ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import html

from shardrun.model.results import Status
from shardrun.model.text import one_line, visible_lines
from shardrun.report.summary import RunSummary, log_tail, lost_line, summary_rows, totals_line


def to_markdown(summary: RunSummary, tail_lines: int = 30) -> str:
    """A summary for a CI page ($GITHUB_STEP_SUMMARY): verdict, table, failing logs' tails."""
    verdict = "passed" if summary.exit_code == 0 else f"failed (exit {summary.exit_code})"
    lines = [
        f"## shardrun {summary.project}: {verdict}",
        "",
        totals_line(summary),
        *(["", lost_line(summary)] if summary.lost_workers else []),
        "",
        "| shard | status | duration | exit | worker | log |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary_rows(list(summary.results)):
        lines.append("| " + " | ".join(_md_cell(cell) for cell in row) + " |")
    for w in summary.workers:
        if w.lost:
            lines += ["", f"Worker {_md_cell(w.name)} was lost: {_md_cell(w.lost)}"]
    for result in summary.results:
        if result.status is Status.PASS:
            continue
        # Line for line, unprintable characters spelled out: `shardrun show` prints this
        # to a terminal, and the test wrote it.
        tail = "\n".join(visible_lines(log_tail(result.log_path, tail_lines)))
        tail = tail.replace(FENCE, "'''")
        if tail:
            summary_line = f"{html.escape(result.name)}: {result.status.value}, last lines"
            lines += [
                "",
                f"<details><summary>{summary_line}</summary>",
                "",
                FENCE,
                tail,
                FENCE,
                "",
                "</details>",
            ]
    return "\n".join(lines) + "\n"


FENCE = "`" * 3


def _md_cell(text: str) -> str:
    return one_line(text.replace("|", "\\|").replace("\n", " "))
