"""Reports built from the same ShardResults as the summary: JSON and JUnit XML."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shardrun import plan, timeline
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
    wall = summary.finished - summary.started
    return f"{len(summary.results)} shards: {', '.join(parts) or 'none run'} in {wall:.1f}s"


def to_json(summary: RunSummary) -> dict:
    planned = {s.name: plan.to_json(s) for s in summary.shards}
    return {
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
            }
            for r in summary.results
        ],
    }


def to_junit(summary: RunSummary) -> str:
    """One testcase per shard; the log tail goes in the failure so CI shows it inline."""
    counts = summary.counts
    suite = ET.Element(
        "testsuite",
        name=summary.project,
        tests=str(len(summary.results)),
        failures=str(counts[Status.FAIL] + counts[Status.TIMEOUT]),
        errors=str(counts[Status.ERROR] + counts[Status.NOT_RUN] + counts[Status.CANCELLED]),
        time=f"{summary.finished - summary.started:.3f}",
    )
    for result in summary.results:
        case = ET.SubElement(
            suite, "testcase", classname=summary.project, name=result.name,
            time=f"{result.duration or 0:.3f}",
        )
        if result.status is Status.PASS:
            continue
        if result.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=_xml_safe(result.detail))
            continue
        tag = "failure" if result.status in (Status.FAIL, Status.TIMEOUT) else "error"
        message = result.detail or f"exit code {result.exit_code}"
        node = ET.SubElement(case, tag, message=_xml_safe(f"{result.status.value}: {message}"))
        node.text = _tail(result.log_path)
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode", xml_declaration=True)


def _tail(log_path: str | None, lines: int = 50) -> str:
    if not log_path:
        return ""
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return ""
    return _xml_safe("\n".join(text.splitlines()[-lines:]))


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    """Test logs carry colour codes and control bytes, which XML 1.0 forbids outright."""
    return _NOT_XML.sub("", _ANSI.sub("", text))


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
        tail = _tail(result.log_path, tail_lines).replace(FENCE, "'''")
        if tail:
            summary_line = f"{html.escape(result.name)}: {result.status.value}, last lines"
            lines += ["", f"<details><summary>{summary_line}</summary>", "", FENCE, tail,
                      FENCE, "", "</details>"]
    return "\n".join(lines) + "\n"


FENCE = "`" * 3


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


REPORTS = ("report.json", "junit.xml", "summary.md", "timeline.html")


def write(summary: RunSummary, run_dir: Path, step_summary: Path | None = None) -> list[Path]:
    """The run's report files; with `step_summary`, also append the Markdown there."""
    paths = [run_dir / name for name in REPORTS]
    markdown = to_markdown(summary)
    write_atomic(paths[0], json.dumps(to_json(summary), indent=2))
    write_atomic(paths[1], to_junit(summary))
    write_atomic(paths[2], markdown)
    write_atomic(paths[3], timeline.to_html(summary))
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
