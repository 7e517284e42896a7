"""Sending one archive (a full or thin tarball, or an OCI layout) to a worker's engine:
raw, or as the run's shared compressed stream of it, with progress events, and the
transfer's figures recorded for the next run's codec choice.

A worker that refuses the compressed archive is sent it raw; if it takes that, the codec
is what it refused, and it is remembered (like thin-load refusals), so later runs send it
raw at once. Refused raw as well, the archive itself was refused: that is the caller's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shardrun.distribute.compress.codecs import NONE
from shardrun.distribute.compress.shared_stream import SharedStreams
from shardrun.distribute.worker_facts import Transfer, WorkerFacts
from shardrun.engine.api import Engine
from shardrun.model.errors import EngineRefused
from shardrun.model.events import Emit, WorkerTransfer

_CHUNK = 1 << 20
_PROGRESS_EVERY = 0.2  # seconds between transfer events per worker


@dataclass
class Link:
    """How to send to one worker; `codec` falls back to "none" once it is refused."""

    worker: str
    url: str
    codec: str
    streams: SharedStreams
    facts: WorkerFacts
    emit: Emit


@dataclass(frozen=True)
class Sent:
    codec: str
    raw: int  # bytes of the archive
    wire: int  # bytes that went to the engine
    seconds: float
    link_seconds: float  # of those, the bytes were going out


def send(
    engine: Engine,
    link: Link,
    path: Path,
    mode: str,
    before_tail: Callable[[], None] | None = None,
    record: bool = True,
) -> Sent:
    """Load the archive at `path` into the worker; EngineRefused if it will not take it.
    `before_tail` is called before the archive's last block goes (it may wait, or raise
    to call the load off); `record` keeps the transfer's figures for the codec choice."""
    if link.codec == NONE:
        return _send_as(engine, link, path, mode, NONE, before_tail, record)
    codec = link.codec
    try:
        return _send_as(engine, link, path, mode, codec, before_tail, record)
    except EngineRefused:
        sent = _send_as(engine, link, path, mode, NONE, before_tail, record)  # raises if refused
        link.facts.refuse_codec(link.url, codec)
        link.codec = NONE
        return sent


def _send_as(
    engine: Engine,
    link: Link,
    path: Path,
    mode: str,
    codec: str,
    before_tail: Callable[[], None] | None,
    record: bool,
) -> Sent:
    raw = path.stat().st_size
    wire = 0
    last = 0.0
    total: Callable[[], int] = lambda: raw

    def progress(sent: int) -> None:
        nonlocal last, wire
        wire = sent
        now = time.monotonic()
        if now - last >= _PROGRESS_EVERY:
            last = now
            size = total()
            if sent < size:
                link.emit(WorkerTransfer(link.worker, sent, size, mode, codec))

    pace = Pace()
    if codec == NONE:
        chunks = file_chunks(path, progress)
    else:
        stream = link.streams.get(path, codec)
        total = stream.expected_size
        chunks = stream.chunks(progress, pace)
    started = time.monotonic()
    engine.load(pace.timed(chunks, before_tail))
    seconds = time.monotonic() - started
    link_seconds = max((pace.sent_at or started + seconds) - started - pace.waited, 0.0)
    sent = Sent(codec, raw, wire, seconds, link_seconds)
    if record:
        transfer = Transfer(codec, raw, wire, seconds, link_seconds, time.time())
        link.facts.record(link.url, transfer)
    return sent


class Pace:
    """When the last byte went, and how long the sender waited (for the compressor, or
    for `before_tail`): the rest of the time, the link was busy."""

    def __init__(self) -> None:
        self.waited = 0.0
        self.sent_at: float | None = None

    def timed(
        self, chunks: Iterator[bytes], before_tail: Callable[[], None] | None = None
    ) -> Iterator[bytes]:
        held = None  # one block in hand: the last one waits for `before_tail`
        for chunk in chunks:
            if held is not None:
                yield held
            held = chunk
        if before_tail is not None:
            waiting = time.monotonic()
            before_tail()
            self.waited += time.monotonic() - waiting
        if held is not None:
            yield held
        self.sent_at = time.monotonic()


def file_chunks(path: Path, progress: Callable[[int], None]) -> Iterator[bytes]:
    """The file in chunks, reporting bytes sent: streamed, never whole in memory."""
    sent = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk
            sent += len(chunk)
            progress(sent)
