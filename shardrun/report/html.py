"""report.html: one self-contained page for a run. Pure: a summary in, HTML out.

A timeline (the build, the save, each worker's distribution, then one row per worker slot
with a bar per shard, coloured by status, details on hover), then the shards that did
not pass, first, each with its failing test cases, its log tail and links to its log and
artifacts, then every shard. Everything is inline (no script, font or image is fetched),
and bars are plain positioned boxes, so 500 shards stay light.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from shardrun.model.results import ShardResult, Status
from shardrun.model.sizes import transfer_text
from shardrun.model.text import counted
from shardrun.report import junit
from shardrun.report.summary import RunSummary, log_tail, lost_line, totals_line

COLOURS = {
    Status.PASS: "#2e7d32",
    Status.FAIL: "#c62828",
    Status.TIMEOUT: "#ef6c00",
    Status.ERROR: "#6a1b9a",
    Status.CANCELLED: "#757575",
    Status.NOT_RUN: "#757575",
    Status.SKIPPED: "#9e9e9e",
}
_PHASE = "#1565c0"
_TAIL_LINES = 30

_STYLE = """
body { font: 13px system-ui, sans-serif; margin: 1.5em; color: #222; }
.row { display: flex; align-items: center; margin: 2px 0; }
.label { width: 16em; flex: none; color: #444; overflow: hidden; white-space: nowrap; }
.lane { position: relative; flex: 1; height: 20px; background: #f3f3f3; }
.bar { position: absolute; top: 2px; bottom: 2px; color: #fff; font-size: 11px;
       overflow: hidden; white-space: nowrap; padding-left: 3px; border-radius: 2px; }
.gap { height: 8px; }
.group { font-weight: 600; margin: 10px 0 2px; }
.shard { border-left: 4px solid; padding: 0.2em 0.8em; margin: 1em 0; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
"""


def to_html(summary: RunSummary, run_dir: Path) -> str:
    title = html.escape(f"shardrun {summary.project} {summary.run_id}")
    not_passed = [r for r in summary.results if r.status is not Status.PASS]
    parts = [
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{_STYLE}</style></head><body><h2>{title}</h2>",
        f"<p>{html.escape(_verdict(summary))}</p>",
        "<h3>Timeline</h3>",
        _timeline(summary),
        f"<h3>Not passed ({len(not_passed)})</h3>",
        *(_failed(r, run_dir) for r in _worst_first(not_passed)),
        "<h3>Every shard</h3>",
        _table(summary.results),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _verdict(summary: RunSummary) -> str:

    lost = lost_line(summary)
    return f"{totals_line(summary)}: exit {summary.exit_code}" + (f"; {lost}" if lost else "")


def _timeline(summary: RunSummary) -> str:
    starts = [summary.started]
    ends = [summary.finished]
    for r in summary.results:
        if r.started is not None and r.finished is not None:
            starts.append(r.started)
            ends.append(r.finished)
    start, span = min(starts), max(max(ends) - min(starts), 1e-6)

    def bar(kind: str, name: str, begin: float, end: float, colour: str, tip: str) -> str:
        left = 100 * (begin - start) / span
        width = max(100 * (end - begin) / span, 0.2)
        return (
            f'<div class="bar" data-kind="{kind}" style="left:{left:.2f}%;width:{width:.2f}%;'
            f'background:{colour}" title="{html.escape(tip)}">{html.escape(name)}</div>'
        )

    def row(label: str, bars: str) -> str:
        return (
            f'<div class="row"><div class="label">{html.escape(label)}</div>'
            f'<div class="lane">{bars}</div></div>'
        )

    rows = []
    if b := summary.build:
        tip = (
            f"build: {b['finished'] - b['started']:.1f}s, {b['cached_steps']}/"
            f"{counted(b['total_steps'], 'step')} cached"
        )
        rows.append(row("build", bar("build", "build", b["started"], b["finished"], _PHASE, tip)))
    if s := summary.save:
        tip = f"save: {s['bytes'] / 1e6:.1f} MB{' (reused)' if s['reused'] else ''}"
        rows.append(row("save", bar("save", "save", s["started"], s["finished"], _PHASE, tip)))
    lanes: dict[tuple[str, int], list[ShardResult]] = defaultdict(list)
    for r in summary.results:
        if r.started is not None and r.finished is not None:
            lanes[(r.worker or "?", r.slot or 0)].append(r)
    # A merged run's workers are named K:worker; each partition's loads and lanes go
    # together under its own heading, as the machines they ran on.
    for part in _groups(summary):
        if part is not None:
            rows.append(f'<div class="group">{html.escape(_heading(summary, part))}</div>')
        for w in summary.workers:
            if _partition_of(summary, w.name) == part and w.load and w.load_started is not None:
                how = transfer_text(w.sent, w.codec, w.wire, w.load_seconds, w.full_size)
                tip = f"{w.name}: {w.load} load, {how}"
                load = bar(
                    "distribution",
                    w.load,
                    w.load_started,
                    w.load_started + w.load_seconds,
                    _PHASE,
                    tip,
                )
                rows.append(row(f"image to {w.name}", load))
        rows.append('<div class="gap"></div>')
        for (worker, slot), results in sorted(lanes.items()):
            if _partition_of(summary, worker) != part:
                continue
            bars = "".join(
                bar(
                    "shard",
                    r.name,
                    r.started or 0.0,  # the lanes hold only shards with both
                    r.finished or 0.0,
                    COLOURS.get(r.status, "#999"),
                    f"{r.name}: {r.status.value} in {r.duration:.1f}s"
                    + ("" if r.exit_code is None else f", exit {r.exit_code}")
                    + (f", attempt {r.attempt}" if r.attempt > 1 else ""),
                )
                for r in results
            )
            rows.append(row(f"{worker}/{slot}", bars))
    return "\n".join(rows)


def _groups(summary: RunSummary) -> list[int | None]:
    """The partitions of a merged run, in order; [None] for any other run."""
    indexes = sorted({int(p["index"]) for p in summary.partitions if "index" in p})
    return list(indexes) or [None]


def _partition_of(summary: RunSummary, worker: str) -> int | None:
    if not summary.partitions:
        return None
    index, colon, _ = worker.partition(":")
    return int(index) if colon and index.isdigit() else None


def _heading(summary: RunSummary, index: int) -> str:
    part = next(p for p in summary.partitions if p.get("index") == index)
    total = f"/{part['total']}" if part.get("total") else ""
    machine = f" on {part['machine']}" if part.get("machine") else ""
    code = part.get("exit_code")
    return f"partition {index}{total}{machine}" + (f": exit {code}" if code is not None else "")


def _worst_first(results: list[ShardResult]) -> list[ShardResult]:
    order = [
        Status.FAIL,
        Status.TIMEOUT,
        Status.ERROR,
        Status.NOT_RUN,
        Status.CANCELLED,
        Status.SKIPPED,
    ]
    return sorted(results, key=lambda r: order.index(r.status) if r.status in order else 99)


def _failed(result: ShardResult, run_dir: Path) -> str:
    colour = COLOURS.get(result.status, "#999")
    head = f"{result.name}: {result.status.value}"
    if result.exit_code is not None:
        head += f", exit {result.exit_code}"
    opening = (
        f'<div class="shard" data-shard="{html.escape(result.name)}" '
        f'style="border-color:{colour}"><h4>{html.escape(head)}</h4>'
    )
    parts = [opening]
    if result.detail:
        parts.append(f"<p>{html.escape(result.detail)}</p>")
    cases, total = junit.failing_cases(result)
    if cases:
        more = f" (and {total - len(cases)} more)" if total > len(cases) else ""
        items = "".join(f"<li>{html.escape(c)}</li>" for c in cases)
        parts.append(f"<p>Failing test cases{more}:</p><ul>{items}</ul>")
    links = []
    if result.log_path:
        links.append(_link(result.log_path, run_dir, "log"))
    links += [_link(p, run_dir, os.path.basename(p)) for p in result.artifacts[:20]]
    if len(result.artifacts) > 20:
        links.append(f"and {counted(len(result.artifacts) - 20, 'more artifact')}")
    if links:
        parts.append(f"<p>{' · '.join(links)}</p>")
    if result.artifacts_note:
        parts.append(f"<p>{html.escape(result.artifacts_note)}</p>")

    tail = log_tail(result.log_path, _TAIL_LINES)
    if tail:
        parts.append(f"<pre>{html.escape(tail)}</pre>")
    parts.append("</div>")
    return "\n".join(parts)


def _link(path: str, run_dir: Path, text: str) -> str:
    try:
        href = os.path.relpath(path, run_dir)
    except ValueError:
        href = path
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def _where(result: ShardResult) -> str:
    if result.reused_from:
        return f"reused from run {result.reused_from}"
    return f"{result.worker}/{result.slot}" if result.worker else ""


def _table(results: Iterable[ShardResult]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.name)}</td><td style='color:{COLOURS.get(r.status, '#999')}'>"
        f"{r.status.value}</td><td>{'' if r.duration is None else f'{r.duration:.1f}s'}</td>"
        f"<td>{html.escape(_where(r))}</td></tr>"
        for r in results
    )
    return (
        "<table><tr><th>shard</th><th>status</th><th>duration</th><th>worker</th></tr>"
        f"{rows}</table>"
    )
