"""The typed events that stages emit and front ends consume.

Stages never print: they emit these, and the UI (live or plain) renders them. Every event
is a frozen dataclass stamped with the wall-clock time it happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shardrun.model.transit import NONE

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

    from shardrun.model.results import ShardResult


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    at: float = field(default_factory=_now, kw_only=True)


@dataclass(frozen=True)
class BuildStarted(Event):
    dockerfile: str
    context: str


@dataclass(frozen=True)
class BuildStep(Event):
    """A BuildKit vertex changed state: started, cached, done or error."""

    digest: str
    name: str
    state: str
    error: str | None = None


@dataclass(frozen=True)
class BuildLog(Event):
    name: str
    line: str


@dataclass(frozen=True)
class BuildFinished(Event):
    image_id: str
    duration: float
    cached_steps: int
    total_steps: int
    cache_from: tuple[str, ...] = ()  # the --cache-from sources the build could use


@dataclass(frozen=True)
class Warned(Event):
    """Something the run goes on without (a --cache-from source it cannot use, a record
    of past results it cannot read): one line."""

    message: str


@dataclass(frozen=True)
class ArtifactReady(Event):
    path: str
    size: int
    reused: bool
    seconds: float = 0.0  # the save's (0 when the cached tarball was reused)


@dataclass(frozen=True)
class WorkerReady(Event):
    worker: str
    slots: int
    detail: str = ""


@dataclass(frozen=True)
class WorkerTransfer(Event):
    """Bytes of the image sent to a worker so far (sent == total when done): on the wire,
    so compressed ones when `codec` is not "none" (then `total` is an estimate until the
    end, and the last event gives the archive's own size as `raw`)."""

    worker: str
    sent: int
    total: int
    mode: str  # "none", "thin" or "full"
    codec: str = NONE
    raw: int = 0


@dataclass(frozen=True)
class WorkerLost(Event):
    worker: str
    reason: str


@dataclass(frozen=True)
class RunPlanned(Event):
    run_id: str
    shards: tuple[str, ...]
    run_dir: str
    # Each shard's expected seconds on a slot, in `shards`' order, from the recorded
    # times; () when none are recorded (no expected end is shown then).
    expected: tuple[float, ...] = ()
    slots: int = 0  # containers the run runs at once (its workers' slots, --jobs); 0: unknown


@dataclass(frozen=True)
class ShardStarted(Event):
    name: str
    worker: str
    slot: int


@dataclass(frozen=True)
class ShardOutput(Event):
    name: str
    line: str


@dataclass(frozen=True)
class ShardFinished(Event):
    result: ShardResult


@dataclass(frozen=True)
class ShardRequeued(Event):
    name: str
    reason: str


Emit = Callable[[Event], None]


class Emitter:
    """Puts events on the UI's stream, from the event loop or from a worker thread.

    Blocking docker-SDK calls run in threads (anyio.to_thread); they emit through the
    loop so the stream's single consumer never sees concurrent sends.
    """

    def __init__(self, send: MemoryObjectSendStream[Event]) -> None:
        self._send = send
        self._loop_thread = threading.get_ident()

    def __call__(self, event: Event) -> None:
        import anyio.from_thread

        if threading.get_ident() == self._loop_thread:
            self._send.send_nowait(event)
        else:
            anyio.from_thread.run_sync(self._send.send_nowait, event)
