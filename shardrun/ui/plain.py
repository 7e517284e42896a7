"""Timestamped plain lines, for CI and pipes: one line per event, no escape codes."""

from __future__ import annotations

import time
from typing import Self, TextIO

from shardrun.model import events as ev
from shardrun.model.results import Status
from shardrun.model.sizes import size_text, transfer_text
from shardrun.model.text import counted, one_line
from shardrun.ui.view_state import expected_end

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


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def clock(seconds: float) -> str:
    """A time span to read at a glance: "45s", "1m20s", "2h05m"."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def cached(event: ev.BuildFinished) -> str:
    """What the build took from a cache: " (7/9 steps cached, from image.tar.zst)"."""
    if not event.total_steps:
        return ""
    steps = f"{event.cached_steps}/{counted(event.total_steps, 'step')} cached"
    if event.cache_from:
        steps += f", cache from {', '.join(event.cache_from)}"
    return f" ({steps})"


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
            return f"built    {short_id(event.image_id)} in {event.duration:.1f}s{cached(event)}"
        case ev.Warned():
            return f"warning  {event.message}"
        case ev.ArtifactReady():
            how = "reused" if event.reused else "saved"
            return f"image    {event.path} ({size_text(event.size)}, {how})"
        case ev.WorkerReady():
            return (
                f"worker   {event.worker}: {counted(event.slots, 'slot')} {event.detail}".rstrip()
            )
        case ev.WorkerTransfer() if event.sent == event.total:
            sent = transfer_text(event.raw or event.sent, event.codec, event.sent)
            return f"loaded   {event.worker}: {event.mode}, {sent} sent"
        case ev.WorkerLost():
            return f"LOST     {event.worker}: {event.reason}"
        case ev.RunPlanned():
            shards = counted(len(event.shards), "shard")
            expected = (
                f", expected ~{clock(expected_end(event.expected, event.slots))}"
                if event.expected
                else ""
            )
            return f"run      {event.run_id}: {shards}{expected}, logs in {event.run_dir}"
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

    def __exit__(self, *exc: object) -> None:
        self.out.flush()

    def handle(self, event: ev.Event) -> None:
        line = plain_line(event)
        if line is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
            # One line, no escape codes: details and paths can hold what a test wrote.
            print(f"{stamp} {one_line(line)}", file=self.out, flush=True)


class QuietView(PlainView):
    """For `repro`: only the build's verdict, so the shard's own output stands out."""

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.BuildFinished) or (
            isinstance(event, ev.BuildStep) and event.state == "error"
        ):
            super().handle(event)
