"""The live view for terminals: rich Live, refreshed from the folded ViewState. Its frame
is a pure function of (state, now, height), so tests can assert exactly what it shows."""

from __future__ import annotations

import time
from collections import Counter
from typing import Self

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from shardrun.model import events as ev
from shardrun.model.results import FAILED, Status
from shardrun.model.sizes import size_text
from shardrun.model.text import counted
from shardrun.model.transit import NONE
from shardrun.ui.plain import STATUS_STYLE, cached, clock, short_id
from shardrun.ui.view_state import ShardView, ViewState, WorkerView


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
        head.append(Text(f"Image  {state.artifact.path} ({size_text(state.artifact.size)}, {how})"))
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
        parts.append(_progress(shards, state.seconds_left(shards, now)))
    return Group(*parts)


def _collapsed(shards: list[ShardView], now: float, room: int) -> list[RenderableType]:
    """`room` lines: the totals line, then the running shards, longest running first, then
    the failures, newest first, in a table.

    Old failures go first, then running rows beyond the room (one line says how many).
    """
    running = sorted((s for s in shards if s.state == "running"), key=lambda s: s.started or 0.0)
    failed = sorted(
        (s for s in shards if s.state in FAILED), key=lambda s: s.finished or 0.0, reverse=True
    )  # stable: ties keep order
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
    count = Counter("failed" if s.state in FAILED else s.state for s in shards)
    rare = "".join(
        f", {count[s.value]} {s.value.lower()}"
        for s in (Status.CANCELLED, Status.NOT_RUN, Status.SKIPPED)
        if count[s.value]
    )
    return (
        f"{counted(len(shards), 'shard')}: {count['PASS']} passed, "
        f"{count['failed']} failed, {count['running']} running, {count['queued']} queued{rare}"
    )


def _one_line(line: str) -> Text:
    return Text(line, no_wrap=True, overflow="ellipsis")


def _progress(shards: list[ShardView], left: float | None) -> Table:
    """The bar, the counts, and the expected end once times are recorded (`left`)."""
    total = len(shards)
    done = sum(s.result is not None for s in shards)
    failed = sum(s.state in FAILED for s in shards)
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=total, completed=done, width=40),
        _one_line(
            f"{done}/{total} done"
            + (f", {failed} failed" if failed else "")
            + (f", ~{clock(left)} left" if left is not None else "")
        ),
    )
    return bar


def _build_line(state: ViewState, now: float) -> Text:
    if state.build_done:
        b = state.build_done
        return Text.from_markup(
            f"Build  [green]done[/] {short_id(b.image_id)} in {b.duration:.1f}s" + escape(cached(b))
        )
    if state.build_started is not None:
        took = now - state.build_started
        return Text.from_markup(f"Build  [cyan]{took:5.1f}s[/] {escape(state.build_step)}")
    return Text("Build  waiting")


def _worker_line(worker: WorkerView) -> Text:
    if worker.lost:
        return Text.from_markup(f"Worker {escape(worker.name)} [red]LOST[/]: {escape(worker.lost)}")
    if worker.mode == "none":
        load = ", image already there"
    elif worker.total and worker.sent < worker.total:
        load = f", {worker.mode} load {size_text(worker.sent)} of {size_text(worker.total)}"
        load += f" {worker.codec}" if worker.codec != NONE else ""
    elif worker.total:
        load = f", {worker.mode} load of {size_text(worker.total)} done"
        load += f" ({worker.codec})" if worker.codec != NONE else ""
    else:
        load = ""
    return Text(f"Worker {worker.name}: {counted(worker.slots, 'slot')}{load}")


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
        if shard.result is not None and shard.result.reused_from:
            where = "reused"  # passed on this content before: it ran nowhere this run
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
            console=console,
            refresh_per_second=8,
            transient=False,
            # The height is read per refresh: the terminal can be resized mid-run.
            get_renderable=lambda: render(self.state, time.time(), self.console.size.height),
        )

    def __enter__(self) -> Self:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()  # what Live's own __exit__ does, whatever the exception

    def handle(self, event: ev.Event) -> None:
        self.state.apply(event)
        if isinstance(event, ev.BuildStep) and event.state == "error":
            self.console.print(f"[red]build step failed:[/] {escape(event.name)}")
        elif isinstance(event, ev.Warned):
            self.console.print(f"[yellow]warning:[/] {escape(event.message)}")
