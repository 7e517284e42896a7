"""The one model every report reads: a run's summary, its workers, and the lines and rows
that the terminal, Markdown, JUnit and HTML reports share."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shardrun.model.results import EXIT_INFRA, ShardResult, Status, exit_code
from shardrun.model.shard import Shard
from shardrun.model.text import counted
from shardrun.model.transit import NONE
from shardrun.report import junit
from shardrun.report.junit import xml_safe


@dataclass(frozen=True)
class WorkerReport:
    name: str
    url: str
    slots: int
    lost: str = ""  # why it was lost (or unreachable at the start); "" if it served
    load: str = ""  # how the image got there: "none", "thin" or "full"
    sent: int = 0  # bytes of the archive sent to it (thin or full)
    full_size: int = 0
    load_seconds: float = 0.0
    required: bool = False  # its loss fails the run (exit 4)
    load_started: float | None = None  # wall clock, when getting the image there began
    codec: str = NONE  # what the archive went in: "none", "gzip" or "zstd"
    wire: int = 0  # bytes on the wire: `sent`, or fewer compressed

    @property
    def rate(self) -> float:
        """Bytes a second on the wire, the whole load long."""
        return (self.wire or self.sent) / self.load_seconds if self.load_seconds > 0 else 0.0


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
    # This run's place in a CI matrix: {"index": K, "total": N, "plan": digest}, or None.
    partition: Mapping[str, Any] | None = None
    # A merged run (`shardrun merge`): each partition's index, run ID, exit code, folder.
    partitions: tuple[Mapping[str, Any], ...] = ()
    # What was compressed for the workers (distribute.compressed_parts.Compression, as dicts).
    compression: tuple[Mapping[str, Any], ...] = ()

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


@dataclass(frozen=True)
class RecordedCases:
    """The test cases as a report recorded them, for a summary printed again (`show`),
    which reads no shard's JUnit file: per shard, its first failing cases and how many
    failed; and how many cases were flaky in all."""

    failing: Mapping[str, tuple[tuple[str, ...], int]]
    flaky: int = 0


def lost_line(summary: RunSummary) -> str:
    """How many workers were lost and why, for the end of the summary; "" if none was.
    A lost worker is never silent: the run may pass without it, but it says so."""
    lost = [w for w in summary.workers if w.lost]
    if not lost:
        return ""
    count = f"{len(lost)} of {counted(len(summary.workers), 'worker')}"
    why = "; ".join(
        f"{w.name}{' (required)' if w.required else ''}: {_short(w.lost)}" for w in lost
    )
    return f"{count} lost: {why}"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def totals_line(summary: RunSummary, flaky: int | None = None) -> str:
    """`flaky`: how many cases were flaky, if known (else read from the JUnit files)."""
    counts = summary.counts
    parts = [f"{counts[s]} {s.value.lower()}" for s in Status if counts[s]]
    if reused := sum(r.reused_from is not None for r in summary.results):
        parts[0] += f" ({reused} reused)"  # only a PASS is reused, and PASS comes first
    if flaky := junit.flaky_count(summary.results) if flaky is None else flaky:
        parts.append(counted(flaky, "flaky test"))
    wall = summary.finished - summary.started
    return (
        f"{counted(len(summary.results), 'shard')}: {', '.join(parts) or 'none run'} in {wall:.1f}s"
    )


def summary_rows(results: Sequence[ShardResult]) -> list[tuple[str, ...]]:
    """Rows of the end-of-run table: shard, status, duration, exit code, where, log."""
    rows: list[tuple[str, ...]] = []
    for r in results:
        duration = f"{r.duration:.1f}s" if r.duration is not None else "-"
        code = "-" if r.exit_code is None else str(r.exit_code)
        where = r.worker or ("reused" if r.reused_from else "-")
        where += f"/{r.slot}" if r.worker and r.slot is not None else ""
        rows.append((r.name, r.status.value, duration, code, where, r.log_path or r.detail))
    return rows


_TAIL_BYTES = 64 * 1024  # 50 lines of any sane width


def log_tail(log_path: str | None, lines: int = 50) -> str:
    """The last `lines` of a shard's log, safe for XML and HTML text ("" if none)."""
    if not log_path:
        return ""
    try:
        with open(log_path, "rb") as log:
            # Only the end: a log may be gigabytes, and it is read once per report.
            log.seek(max(0, log.seek(0, os.SEEK_END) - _TAIL_BYTES))
            text = log.read(_TAIL_BYTES).decode(errors="replace")
    except OSError:
        return ""
    return xml_safe("\n".join(text.splitlines()[-lines:]))
