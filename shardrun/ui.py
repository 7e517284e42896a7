"""Front ends: a rich Live view for terminals, timestamped plain lines for CI and pipes.

Both consume the run's events and fold them into a ViewState; the live view's frame is a
pure function of (state, now, height), so tests can assert exactly what it shows.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Self, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from shardrun import events as ev
from shardrun import junit
from shardrun.report import RunSummary, lost_line, summary_rows, totals_line
from shardrun.results import Status
from shardrun.view_state import ShardView, ViewState

STATUS_STYLE = {
    "PASS": "green",
    "FAIL": "red",
    "TIMEOUT": "red",
    "ERROR": "magenta",
    "CANCELLED": "yellow",
    "NOT RUN": "yellow",
    "SKIPPED": "yellow",
    "running": "cyan",
    "queued": "dim",
}


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def plain_line(event: ev.Event) -> str | None:
    """The plain-mode line for an event, or None for events only the live view shows."""
    match event:
        case ev.BuildStarted():
            return f"build    {event.dockerfile}"
        case ev.BuildStep(state="error"):
            return f"error    {event.name}: {event.error}"
        case ev.BuildStep():
            return f"{event.state:<8} {event.name}"
        case ev.BuildLog():
            return f"  |      {event.line}"
        case ev.BuildFinished():
            cached = event.total_steps and f" ({event.cached_steps}/{event.total_steps} steps cached)"
            return f"built    {_short(event.image_id)} in {event.duration:.1f}s{cached or ''}"
        case ev.ArtifactReady():
            how = "reused" if event.reused else "saved"
            return f"image    {event.path} ({_size(event.size)}, {how})"
        case ev.WorkerReady():
            return f"worker   {event.worker}: {event.slots} slots {event.detail}".rstrip()
        case ev.WorkerTransfer() if event.sent == event.total:
            return f"loaded   {event.worker}: {event.mode}, {_size(event.sent)} sent"
        case ev.WorkerLost():
            return f"LOST     {event.worker}: {event.reason}"
        case ev.RunPlanned():
            return f"run      {event.run_id}: {len(event.shards)} shards, logs in {event.run_dir}"
        case ev.ShardStarted():
            return f"start    {event.name} on {event.worker}/{event.slot}"
        case ev.ShardFinished():
            r = event.result
            took = f" in {r.duration:.1f}s" if r.duration is not None else ""
            code = f" (exit {r.exit_code})" if r.status is Status.FAIL else ""
            detail = f": {r.detail}" if r.detail and r.status is not Status.FAIL else ""
            return f"{r.status.value:<8} {r.name}{took}{code}{detail}"
        case ev.ShardRequeued():
            return f"requeue  {event.name}: {event.reason}"
    return None


class PlainView:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.out.flush()

    def handle(self, event: ev.Event) -> None:
        line = plain_line(event)
        if line is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
            print(f"{stamp} {line}", file=self.out, flush=True)


class QuietView(PlainView):
    """For `repro`: only the build's verdict, so the shard's own output stands out."""

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.BuildFinished) or (
            isinstance(event, ev.BuildStep) and event.state == "error"
        ):
            super().handle(event)


FAILED_STATES = ("FAIL", "TIMEOUT", "ERROR")


def render(state: ViewState, now: float, height: int | None = None) -> RenderableType:
    """One frame of the live view, at most `height` lines tall when one is given.

    A frame taller than the terminal makes rich's Live crop it to "..." and, with 200 shards,
    leaves nothing readable; so when one row per shard will not fit, the table collapses to
    totals, the running shards and the newest failures. height=None: no limit.
    """
    shards = list(state.shards.values())  # one snapshot: events mutate the state meanwhile
    head: list[Text] = [_build_line(state, now)]
    if state.artifact:
        how = "reused" if state.artifact.reused else "saved"
        head.append(Text(f"Image  {state.artifact.path} ({_size(state.artifact.size)}, {how})"))
    head.extend(_worker_line(worker) for worker in state.workers.values())
    if height is not None:
        # Counting lines is only exact if no line wraps: truncate long step names and paths.
        for text in head:
            text.no_wrap, text.overflow = True, "ellipsis"
    parts: list[RenderableType] = list(head)
    if shards:
        # the full frame: the lines above, the table's header and rows, the progress bar
        if height is None or len(head) + 1 + len(shards) + 1 <= height:
            parts.append(_shard_table(shards, now))
        else:
            parts.extend(_collapsed(shards, now, room=height - len(head) - 1))  # - the bar
        parts.append(_progress(shards))
    return Group(*parts)


def _collapsed(shards: list[ShardView], now: float, room: int) -> list[RenderableType]:
    """`room` lines: the totals line, then the running shards, longest running first, then
    the failures, newest first, in a table.

    Old failures go first, then running rows beyond the room (one line says how many).
    """
    running = sorted((s for s in shards if s.state == "running"), key=lambda s: s.started or 0.0)
    failed = sorted((s for s in shards if s.state in FAILED_STATES),
                    key=lambda s: s.finished or 0.0, reverse=True)  # stable: ties keep order
    parts: list[RenderableType] = [_one_line(_totals(shards))]
    room -= 1  # the totals line
    if len(running) <= room - 1:  # all running rows and the table's header fit
        rows, more = running + failed[: max(room - 1 - len(running), 0)], 0
    else:  # the header, as many running rows as fit, and the "more" line
        rows = running[: max(room - 2, 0)]
        more = len(running) - len(rows)
    if rows:
        parts.append(_shard_table(rows, now))
    if more and room >= 1:
        parts.append(_one_line(f"… and {more} more running"))
    return parts


def _totals(shards: list[ShardView]) -> str:
    count = Counter("failed" if s.state in FAILED_STATES else s.state for s in shards)
    rare = "".join(
        f", {count[s.value]} {s.value.lower()}"
        for s in (Status.CANCELLED, Status.NOT_RUN, Status.SKIPPED) if count[s.value]
    )
    return (
        f"{len(shards)} shard{'s' * (len(shards) != 1)}: {count['PASS']} passed, "
        f"{count['failed']} failed, {count['running']} running, {count['queued']} queued{rare}"
    )


def _one_line(line: str) -> Text:
    return Text(line, no_wrap=True, overflow="ellipsis")


def _progress(shards: list[ShardView]) -> Table:
    total = len(shards)
    done = sum(s.result is not None for s in shards)
    failed = sum(s.state in FAILED_STATES for s in shards)
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=total, completed=done, width=40),
        _one_line(f"{done}/{total} done" + (f", {failed} failed" if failed else "")),
    )
    return bar


def _build_line(state: ViewState, now: float) -> Text:
    if state.build_done:
        b = state.build_done
        cached = f" ({b.cached_steps}/{b.total_steps} steps cached)" if b.total_steps else ""
        return Text.from_markup(
            f"Build  [green]done[/] {_short(b.image_id)} in {b.duration:.1f}s{cached}"
        )
    if state.build_started is not None:
        took = now - state.build_started
        return Text.from_markup(f"Build  [cyan]{took:5.1f}s[/] {escape(state.build_step)}")
    return Text("Build  waiting")


def _worker_line(worker) -> Text:
    if worker.lost:
        return Text.from_markup(f"Worker {escape(worker.name)} [red]LOST[/]: {escape(worker.lost)}")
    if worker.mode == "none":
        load = ", image already there"
    elif worker.total and worker.sent < worker.total:
        load = f", {worker.mode} load {_size(worker.sent)} of {_size(worker.total)}"
    elif worker.total:
        load = f", {worker.mode} load of {_size(worker.total)} done"
    else:
        load = ""
    return Text(f"Worker {worker.name}: {worker.slots} slots{load}")


def _shard_table(shards: list[ShardView], now: float) -> Table:
    """A header line, then one line per shard (no cell wraps)."""
    table = Table(box=None, pad_edge=False, expand=False)
    for column in ("shard", "status", "time", "worker", "last line"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for shard in shards:
        if shard.result is not None and shard.result.duration is not None:
            took = f"{shard.result.duration:.1f}s"  # as the summary says: the container's run
        elif shard.started is not None:
            took = f"{(shard.finished or now) - shard.started:.1f}s"
        else:
            took = ""
        where = f"{shard.worker}/{shard.slot}" if shard.worker else ""
        style = STATUS_STYLE.get(shard.state, "")
        table.add_row(
            shard.name, Text(shard.state, style=style), took, where, Text(shard.last_line[:80])
        )
    return table


class LiveView:
    """rich Live, refreshed from the state; events only update the state."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.state = ViewState()
        self._live = Live(
            console=console, refresh_per_second=8, transient=False,
            # The height is read per refresh: the terminal can be resized mid-run.
            get_renderable=lambda: render(self.state, time.time(), self.console.size.height),
        )

    def __enter__(self) -> Self:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)

    def handle(self, event: ev.Event) -> None:
        self.state.apply(event)
        if isinstance(event, ev.BuildStep) and event.state == "error":
            self.console.print(f"[red]build step failed:[/] {escape(event.name)}")


def workers_table(rows, image_id: str | None) -> Table:
    image = _short(image_id) if image_id else "none built yet"
    table = Table(title=f"workers (image {image})", title_justify="left")
    for column in ("worker", "url", "status", "engine", "CPUs", "slots", "has image"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if not row.reachable:
            table.add_row(row.name, row.url, Text("unreachable", style="red"), row.error,
                          "", "", "")
            continue
        has = {True: "yes", False: "no", None: "-"}[row.has_image]
        table.add_row(row.name, row.url, Text("ok", style="green"), row.version,
                      str(row.cpus), str(row.slots), has)
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
            how += f" {_size(w.sent)} of {_size(w.full_size)} in {w.load_seconds:.1f}s"
        lines.append(f"worker {w.name}: {w.slots} slots, {how}, ran {ran.get(w.name, 0)} shards")
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
            lines.append(f"kept {r.name}: container {r.kept} on {r.worker}; look inside with: "
                         f"{docker} commit {r.kept} {image} && "
                         f"{docker} run --rm -it --entrypoint sh {image}")
    return lines


def failing_case_lines(summary: RunSummary) -> list[str]:
    """The failing test cases of each failed shard that wrote JUnit (10 at most each)."""
    lines = []
    for r in summary.results:
        if r.status in (Status.FAIL, Status.TIMEOUT):
            shown, total = junit.failing_cases(r)
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
            lines.append(f"artifacts of {r.name}: {len(r.artifacts)} files in {folder}")
        if r.artifacts_note:
            lines.append(f"artifacts of {r.name}: {r.artifacts_note}")
    return lines


def print_summary(console: Console, summary: RunSummary, reports: list) -> None:
    table = Table(title=f"shardrun {summary.run_id}", title_justify="left")
    for column in ("shard", "status", "duration", "exit", "worker", "log"):
        table.add_column(column, overflow="fold")
    for row in summary_rows(list(summary.results)):
        table.add_row(*row[:1], Text(row[1], style=STATUS_STYLE.get(row[1], "")), *row[2:])
    console.print(table)
    if len(summary.workers) > 1 or summary.lost_workers:
        for line in worker_lines(summary):
            console.print(line, highlight=False)
    # Not wrapped: these hold paths and commands to copy.
    for line in artifact_lines(summary) + failing_case_lines(summary) + kept_lines(summary):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    verdict = ("[green]passed[/]" if summary.exit_code == 0
               else "[yellow]interrupted[/]" if summary.interrupted else "[red]failed[/]")
    lost = lost_line(summary)
    console.print(f"{totals_line(summary)}: {verdict} (exit {summary.exit_code})"
                  + (f"; {escape(lost)}" if lost else ""), highlight=False)
    for path in reports:
        console.print(f"report: {path}", highlight=False)
