"""Reports built from the same ShardResults as the summary: JSON and JUnit XML."""

from __future__ import annotations

import dataclasses
import html
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun import html_report, junit, plan
from shardrun.junit import xml_safe
from shardrun.plan import Shard
from shardrun.results import EXIT_INFRA, ShardResult, Status, exit_code
from shardrun.timings import write_atomic


@dataclass(frozen=True)
class WorkerReport:
    name: str
    url: str
    slots: int
    lost: str = ""  # why it was lost (or unreachable at the start); "" if it served
    load: str = ""  # how the image got there: "none", "thin" or "full"
    sent: int = 0  # bytes of tarball sent to it
    full_size: int = 0
    load_seconds: float = 0.0
    required: bool = False  # its loss fails the run (exit 4)
    load_started: float | None = None  # wall clock, when getting the image there began


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    project: str
    image_id: str | None
    started: float
    finished: float
    results: tuple[ShardResult, ...]
    interrupted: bool = False
    workers: tuple[WorkerReport, ...] = ()
    error: str = ""  # what stopped the run early (a full disk), if anything did
    # The shards as planned (options merged, placeholders filled), for repro to rerun.
    shards: tuple[Shard, ...] = ()
    # Phases before the shards, as report.json's "phases" gives them (see Phases).
    build: Mapping[str, Any] | None = None
    save: Mapping[str, Any] | None = None

    @property
    def lost_workers(self) -> tuple[str, ...]:
        return tuple(w.name for w in self.workers if w.lost)

    @property
    def exit_code(self) -> int:
        if (self.error or self.lost_required) and not self.interrupted:
            return EXIT_INFRA
        return exit_code(list(self.results), self.interrupted)

    @property
    def lost_required(self) -> tuple[str, ...]:
        return tuple(w.name for w in self.workers if w.lost and w.required)

    @property
    def counts(self) -> Counter:
        return Counter(r.status for r in self.results)


def lost_line(summary: RunSummary) -> str:
    """How many workers were lost and why, for the end of the summary; "" if none was.
    A lost worker is never silent: the run may pass without it, but it says so."""
    lost = [w for w in summary.workers if w.lost]
    if not lost:
        return ""
    count = f"{len(lost)} of {len(summary.workers)} workers"
    why = "; ".join(f"{w.name}{' (required)' if w.required else ''}: {_short(w.lost)}"
                    for w in lost)
    return f"{count} lost: {why}"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def totals_line(summary: RunSummary) -> str:
    counts = summary.counts
    parts = [f"{counts[s]} {s.value.lower()}" for s in Status if counts[s]]
    if flaky := junit.flaky_count(summary.results):
        parts.append(f"{flaky} flaky test{'s' * (flaky != 1)}")
    wall = summary.finished - summary.started
    return f"{len(summary.results)} shards: {', '.join(parts) or 'none run'} in {wall:.1f}s"


SCHEMA = "https://shardrun.dev/schemas/report-1.json"  # its file: shardrun/report.schema.json


def to_json(summary: RunSummary) -> dict:
    planned = {s.name: plan.to_json(s) for s in summary.shards}
    return {
        "schema": SCHEMA,
        "run_id": summary.run_id,
        "project": summary.project,
        "image_id": summary.image_id,
        "started": summary.started,
        "finished": summary.finished,
        "exit_code": summary.exit_code,
        "interrupted": summary.interrupted,
        "error": summary.error,
        "lost_workers": list(summary.lost_workers),
        "lost_required_workers": list(summary.lost_required),
        "phases": {"build": summary.build, "save": summary.save,
                   "distribution": [{"worker": w.name, "mode": w.load, "sent": w.sent,
                                     "started": w.load_started, "seconds": w.load_seconds}
                                    for w in summary.workers if w.load]},
        "flaky": junit.flaky_count(summary.results),
        "workers": [dataclasses.asdict(w) for w in summary.workers],
        "shards": [
            {
                "name": r.name,
                "status": r.status.value,
                "exit_code": r.exit_code,
                "started": r.started,
                "finished": r.finished,
                "duration": r.duration,
                "worker": r.worker,
                "slot": r.slot,
                "attempt": r.attempt,
                "log": r.log_path,
                "detail": r.detail,
                "artifacts": list(r.artifacts),
                "artifacts_note": r.artifacts_note,
                "junit": r.junit,
                "image": r.image,
                "options": planned.get(r.name),
                "test_cases": _cases_json(r),
                "kept_container": r.kept,
            }
            for r in summary.results
        ],
    }


def _cases_json(result: ShardResult) -> list[dict] | None:
    """The test cases of the shard's own JUnit file (None if it wrote none)."""
    found = junit.flaky_and_cases(result)
    if found is None:
        return None
    cases, flaky = found
    return [{"classname": c.classname, "name": c.name, "time": c.time, "outcome": c.outcome,
             "message": c.message, "flaky": c.key in flaky} for c in cases]


def to_junit(summary: RunSummary) -> str:
    """A testsuite per shard: the cases of the shard's own JUnit file, or one testcase for
    the shard, whose failure carries the log tail so CI shows it inline."""
    return junit.to_xml(summary.project, summary.results, summary.finished - summary.started,
                        log_tail)


def log_tail(log_path: str | None, lines: int = 50) -> str:
    """The last `lines` of a shard's log, safe for XML and HTML text ("" if none)."""
    if not log_path:
        return ""
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return ""
    return xml_safe("\n".join(text.splitlines()[-lines:]))


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
        tail = log_tail(result.log_path, tail_lines).replace(FENCE, "'''")
        if tail:
            summary_line = f"{html.escape(result.name)}: {result.status.value}, last lines"
            lines += ["", f"<details><summary>{summary_line}</summary>", "", FENCE, tail,
                      FENCE, "", "</details>"]
    return "\n".join(lines) + "\n"


FENCE = "`" * 3


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


REPORTS = ("report.json", "junit.xml", "summary.md", "report.html")


def write(summary: RunSummary, run_dir: Path, step_summary: Path | None = None) -> list[Path]:
    """The run's report files; with `step_summary`, also append the Markdown there."""
    paths = [run_dir / name for name in REPORTS]
    markdown = to_markdown(summary)
    write_atomic(paths[0], json.dumps(to_json(summary), indent=2))
    write_atomic(paths[1], to_junit(summary))
    write_atomic(paths[2], markdown)
    write_atomic(paths[3], html_report.to_html(summary, run_dir))
    if step_summary is not None:
        with open(step_summary, "a", encoding="utf-8") as out:  # CI collects, never replaces
            out.write(markdown)
    return paths


def summary_rows(results: Sequence[ShardResult]) -> list[tuple[str, ...]]:
    """Rows of the end-of-run table: shard, status, duration, exit code, where, log."""
    rows = []
    for r in results:
        duration = f"{r.duration:.1f}s" if r.duration is not None else "-"
        code = "-" if r.exit_code is None else str(r.exit_code)
        where = f"{r.worker}/{r.slot}" if r.worker else "-"
        rows.append((r.name, r.status.value, duration, code, where, r.log_path or r.detail))
    return rows


def github_annotations(summary: RunSummary, tail_lines: int = 30) -> list[str]:
    """GitHub Actions workflow commands: each failed shard's log tail in a collapsed group,
    and one `::error` per failed shard, or per failing test case when the shard wrote JUnit."""
    lines = []
    for result in summary.results:
        if result.status in (Status.PASS, Status.SKIPPED):
            continue
        lines.append(f"::group::{_gh_data(result.name)}: {result.status.value}, last lines")
        lines += log_tail(result.log_path, tail_lines).splitlines()
        lines.append("::endgroup::")
        found = junit.flaky_and_cases(result)
        failing = [c for c in found[0] if c.failed] if found else []
        for case in failing:
            title = f"{result.name}: {case.classname}::{case.name}"
            lines.append(f"::error title={_gh_property(title)}::"
                         f"{_gh_data(case.message or case.outcome)}")
        if not failing:
            why = result.detail or f"exit code {result.exit_code}"
            lines.append(f"::error title={_gh_property(f'shard {result.name} {result.status.value}')}"
                         f"::{_gh_data(why)}")
    return lines


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")
