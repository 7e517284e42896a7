"""An HTML timeline of a run: one row per worker slot, one bar per shard. Pure."""

from __future__ import annotations

import html
from collections import defaultdict
from typing import TYPE_CHECKING

from shardrun.results import Status

if TYPE_CHECKING:  # report.py writes the timeline, so the import only serves the types
    from shardrun.report import RunSummary

_COLOURS = {
    Status.PASS: "#2e7d32",
    Status.FAIL: "#c62828",
    Status.TIMEOUT: "#ef6c00",
    Status.ERROR: "#6a1b9a",
    Status.CANCELLED: "#757575",
    Status.SKIPPED: "#9e9e9e",
}

_STYLE = """
body { font: 13px system-ui, sans-serif; margin: 1.5em; }
.row { display: flex; align-items: center; margin: 2px 0; }
.slot { width: 14em; flex: none; color: #444; overflow: hidden; white-space: nowrap; }
.lane { position: relative; flex: 1; height: 22px; background: #f3f3f3; }
.bar { position: absolute; top: 2px; bottom: 2px; color: #fff; font-size: 11px;
       overflow: hidden; white-space: nowrap; padding-left: 3px; border-radius: 2px; }
"""


def to_html(summary: RunSummary) -> str:
    """Bars placed by start and end relative to the run, so idle slots and the long tail
    show at a glance; each bar's tooltip has the shard, status, duration and exit code."""
    ran = [r for r in summary.results if r.started is not None and r.finished is not None]
    start = min((r.started for r in ran), default=summary.started)
    span = max(max((r.finished for r in ran), default=summary.finished) - start, 1e-6)
    lanes = defaultdict(list)
    for result in ran:
        lanes[(result.worker or "?", result.slot or 0)].append(result)
    rows = []
    for (worker, slot), results in sorted(lanes.items()):
        bars = "".join(_bar(r, start, span) for r in results)
        label = html.escape(f"{worker}/{slot}")
        rows.append(f'<div class="row"><div class="slot">{label}</div>'
                    f'<div class="lane">{bars}</div></div>')
    title = html.escape(f"shardrun {summary.project} {summary.run_id}")
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body><h2>{title}</h2>"
        f"<p>{len(ran)} shards on {len(lanes)} slots over {span:.1f}s; "
        f"exit {summary.exit_code}</p>\n" + "\n".join(rows) + "\n</body></html>\n"
    )


def _bar(result, start: float, span: float) -> str:
    left = 100 * (result.started - start) / span
    width = max(100 * (result.finished - result.started) / span, 0.2)
    colour = _COLOURS.get(result.status, "#999")
    code = "" if result.exit_code is None else f", exit {result.exit_code}"
    tip = html.escape(f"{result.name}: {result.status.value} in {result.duration:.1f}s{code}")
    return (f'<div class="bar" style="left:{left:.2f}%;width:{width:.2f}%;'
            f'background:{colour}" title="{tip}">{html.escape(result.name)}</div>')
