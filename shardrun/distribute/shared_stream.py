"""The compressed form of an archive for every worker that gets it in that codec, each
layer compressed once for the run whatever the archives that carry it (segments).

An archive's compressed stream is its segments' compressed parts one after another. A
large part is compressed by a process of its own (compress_child) into a temp file beside
the archive, as fast as the runner's cores allow; every worker reads the file as it grows,
each at its own link's pace, so a fast worker never waits for a slow one. The parts of an
archive are compressed in order, one at a time, starting as soon as the first worker asks
for the archive. Small parts (tar headers, configs) are compressed in the runner, whole.
What each part cost (its process's CPU time, every codec thread counted) goes into the
run's report. The files live for the run (`SharedStreams` closes them); they are not kept
in the cache, where the raw tarballs stay the one verified form. An interrupted run leaves
none: they are registered temp files, removed as the process exits, or by the next run's
sweep; and a compressing process stops when its runner is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import shardrun
from shardrun.distribute import codecs, layers
from shardrun.distribute.segments import SHARED_LEAST, Segment, cut
from shardrun.model.errors import InfraError
from shardrun.state.files import temp_file

_CHUNK = 1 << 20
CHILD = "shardrun.distribute.compress_child"


@dataclass(frozen=True)
class Compression:
    """What compressing one part cost, for the report."""

    archive: str  # the file the bytes were read from
    layer: str  # the layer blob's digest; "" for the archive's own small parts, summed
    codec: str
    raw: int
    compressed: int
    seconds: float
    cpu: float  # CPU seconds spent compressing it, every thread counted


class _Part(Protocol):
    start: int
    end: int

    def begin(self) -> None: ...
    def wait(self) -> None: ...
    def read(self, pace: Any) -> Iterator[bytes]: ...
    def expected_size(self) -> int | None: ...
    def close(self) -> None: ...


class Compressed:
    """Bytes [start, end) of `source` compressed in `codec` by a child process into a temp
    file that readers follow as it grows. Nothing runs until `begin`."""

    def __init__(self, source: Path, codec: str, start: int, end: int, key: str = "") -> None:
        self.source, self.codec, self.start, self.end, self.key = source, codec, start, end, key
        self._cond = threading.Condition()
        self._path: Path | None = None
        self._written = 0  # compressed bytes in the file so far
        self._read = 0  # of the range, compressed so far
        self._done = False
        self._error: BaseException | None = None
        self._closing = threading.Event()
        self._child: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self.seconds = 0.0
        self.cpu: float | None = None

    def begin(self) -> None:
        with self._cond:
            if self._thread is None:
                name = f"{self.codec} {self.source.name}:{self.start}"
                self._thread = threading.Thread(target=self._compress, daemon=True, name=name)
                self._thread.start()

    def _compress(self) -> None:
        try:
            final = self.source.with_name(f"{self.source.name}.{self.start}.{self.codec}")
            with temp_file(final, "a compressed copy of the image", self.end - self.start) as tmp:
                started = time.monotonic()
                with self._cond:
                    self._path = tmp.path
                    self._cond.notify_all()
                self._follow(self._start_child(tmp.file.fileno()))
                self.seconds = time.monotonic() - started
                if self._closing.is_set():
                    raise InfraError("the run ended before the image was compressed")
                with self._cond:
                    self._done = True
                    self._cond.notify_all()
                # The readers may still be sending it: the file goes when the run ends.
                self._closing.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the readers, who raise it
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _start_child(self, fd: int) -> subprocess.Popen[str]:
        # The child imports this very package, wherever it was imported from.
        where = str(Path(shardrun.__file__).parent.parent)
        path = os.pathsep.join(p for p in (where, os.environ.get("PYTHONPATH")) if p)
        args = [self.codec, str(self.source), str(self.start), str(self.end), str(fd)]
        child = subprocess.Popen(
            [sys.executable, "-m", CHILD, *args],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
            start_new_session=True,  # a Ctrl-C is the runner's to handle, not the child's
        )
        with self._cond:
            self._child = child
            if self._closing.is_set():  # closed while it started
                child.kill()
        return child

    def _follow(self, child: subprocess.Popen[str]) -> None:
        """Counts what the child says it wrote, for the readers, until it ends."""
        assert child.stdout is not None and child.stderr is not None
        for line in child.stdout:
            kind, _, value = line.partition(" ")
            with self._cond:
                if kind == "w":
                    self._written += int(value)
                    self._cond.notify_all()
                elif kind == "r":
                    self._read += int(value)
                elif kind == "cpu":
                    self.cpu = float(value)
        error = child.stderr.read().strip()
        if child.wait() != 0 and not self._closing.is_set():
            raise InfraError(error.splitlines()[-1] if error else f"exit code {child.returncode}")

    def wait(self) -> None:
        """Until it is compressed whole, has failed, or the run ends."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._done or self._error is not None or self._closing.is_set()
            )

    def expected_size(self) -> int | None:
        """The compressed size as far as can be told yet (exact once it is done); None
        before any of it is compressed."""
        with self._cond:
            if self._done:
                return self._written
            if not self._read:
                return None
            return max(self._written, round(self._written * (self.end - self.start) / self._read))

    def read(self, pace: Any = None) -> Iterator[bytes]:
        """The compressed bytes from their start, as soon as each is written; the time
        spent waiting for the compressor is added to `pace.waited`, if given."""
        self.begin()
        sent = 0
        with self._cond:
            self._cond.wait_for(lambda: self._path is not None or self._error is not None)
            self._raise_if_failed()
            assert self._path is not None
            path = self._path
        with open(path, "rb") as f:
            while True:
                with self._cond:
                    waiting = time.monotonic()
                    while self._written <= sent and not self._done and self._error is None:
                        self._cond.wait()
                    if pace is not None:
                        pace.waited += time.monotonic() - waiting
                    self._raise_if_failed()
                    ready, done = self._written - sent, self._done
                if ready <= 0 and done:
                    return
                chunk = f.read(min(ready, _CHUNK))
                sent += len(chunk)
                yield chunk

    def _raise_if_failed(self) -> None:
        if self._closing.is_set():
            raise InfraError("the run ended during the transfer")
        if self._error is not None:
            raise InfraError(f"compressing the image for the workers failed: {self._error}")

    def figures(self) -> Compression | None:
        """What compressing it cost; None unless it was compressed whole."""
        with self._cond:
            if not self._done or self.cpu is None:
                return None
            return Compression(
                self.source.name,
                self.key,
                self.codec,
                self.end - self.start,
                self._written,
                self.seconds,
                self.cpu,
            )

    def close(self) -> None:
        self._closing.set()
        with self._cond:
            self._cond.notify_all()  # readers waiting for more: there is none
            child, thread = self._child, self._thread
        if child is not None and child.poll() is None:
            child.kill()
        if thread is not None:
            thread.join(timeout=30)


class Small:
    """A small range of an archive, compressed whole in this process on first need."""

    def __init__(self, source: Path, codec: str, start: int, end: int) -> None:
        self.source, self.codec, self.start, self.end = source, codec, start, end
        self._lock = threading.Lock()
        self._data: bytes | None = None
        self.cpu = 0.0

    def begin(self) -> None:
        with self._lock:
            if self._data is not None:
                return
            cpu = time.thread_time()
            try:
                with open(self.source, "rb") as f:
                    f.seek(self.start)
                    raw = f.read(self.end - self.start)
            except OSError as exc:
                raise InfraError(f"compressing the image for the workers failed: {exc}") from exc
            if len(raw) != self.end - self.start:
                raise InfraError(f"compressing the image for the workers failed: {self.source} "
                                 "changed while it was read")  # fmt: skip
            self._data = codecs.compressed_bytes(self.codec, raw)
            self.cpu = time.thread_time() - cpu

    def wait(self) -> None:
        pass  # `begin` does it all

    def read(self, pace: Any = None) -> Iterator[bytes]:
        self.begin()
        assert self._data is not None
        if self._data:
            yield self._data

    def expected_size(self) -> int | None:
        return len(self._data) if self._data is not None else None

    def close(self) -> None:
        pass


class Archive:
    """An archive's compressed stream: its parts in order, each compressed once for every
    worker and every archive that holds the same layer."""

    def __init__(self, source: Path, codec: str, parts: list[_Part]) -> None:
        self.source, self.codec, self._parts = source, codec, parts
        self.raw_size = source.stat().st_size
        self._stop = threading.Event()
        producer = threading.Thread(target=self._produce, daemon=True, name=f"{codec} {source}")
        producer.start()

    def _produce(self) -> None:
        """Starts the parts in order, each once the one before is compressed: compression
        runs ahead of every reader, on all cores, but one part at a time."""
        for part in self._parts:
            if self._stop.is_set():
                return
            try:
                part.begin()
            except InfraError:
                return  # the readers get it when they reach that part
            part.wait()

    def chunks(
        self, progress: Callable[[int], None] = lambda sent: None, pace: Any = None
    ) -> Iterator[bytes]:
        """The compressed archive, part after part, as soon as each is written."""
        sent = 0
        for part in self._parts:
            for chunk in part.read(pace):
                sent += len(chunk)
                progress(sent)
                yield chunk

    def expected_size(self) -> int:
        """The compressed size as far as can be told yet: parts not compressed yet are
        reckoned at the ratio of those that are. Exact once every part is done."""
        known_raw = known = unknown_raw = 0
        for part in self._parts:
            size = part.expected_size()
            if size is None:
                unknown_raw += part.end - part.start
            else:
                known_raw, known = known_raw + part.end - part.start, known + size
        ratio = known / known_raw if known_raw else 1.0
        return known + round(unknown_raw * ratio)

    def small_figures(self) -> Compression | None:
        """What the archive's own small parts cost, summed; None if it has none done."""
        small = [p for p in self._parts if isinstance(p, Small) and p.expected_size() is not None]
        if not small:
            return None
        cpu = sum(p.cpu for p in small)
        return Compression(
            self.source.name,
            "",
            self.codec,
            sum(p.end - p.start for p in small),
            sum(p.expected_size() or 0 for p in small),
            cpu,
            cpu,
        )

    def close(self) -> None:
        self._stop.set()


class SharedStreams:
    """The run's compressed archives, one per (archive, codec), and their parts, one per
    (layer, codec) or per small range of an archive; closed at the run's end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._archives: dict[tuple[Path, str], Archive] = {}
        self._shared: dict[tuple[str, str], Compressed] = {}  # (layer digest, codec)
        self._own: list[Compressed] = []  # large ranges of no layer, one archive's
        self._closed = False

    def get(self, source: Path, codec: str) -> Archive:
        with self._lock:
            if self._closed:
                raise InfraError("the run is ending; no more transfers")
            key = (source, codec)
            if key not in self._archives:
                parts = [self._part(source, codec, s) for s in _segments(source)]
                self._archives[key] = Archive(source, codec, parts)
            return self._archives[key]

    def _part(self, source: Path, codec: str, segment: Segment) -> _Part:
        start, end = segment.start, segment.end
        if end - start < SHARED_LEAST:
            return Small(source, codec, start, end)
        if not segment.key:
            self._own.append(Compressed(source, codec, start, end))
            return self._own[-1]
        if (segment.key, codec) not in self._shared:
            self._shared[segment.key, codec] = Compressed(source, codec, start, end, segment.key)
        return self._shared[segment.key, codec]

    def figures(self) -> list[Compression]:
        """What each part compressed whole so far cost: every layer once, then each
        archive's own bytes."""
        with self._lock:
            large = [*self._shared.values(), *self._own]
            archives = list(self._archives.values())
        found = [f for part in large if (f := part.figures()) is not None]
        return found + [f for a in archives if (f := a.small_figures()) is not None]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            archives = list(self._archives.values())
            large = [*self._shared.values(), *self._own]
        for archive in archives:
            archive.close()
        for part in large:
            part.close()


def _segments(source: Path) -> list[Segment]:
    """The archive's segments; one of it all if it cannot be read as an archive (the
    readers then get the reading's error, or its bytes as they are)."""
    try:
        return cut(source)
    except layers.UNREADABLE:
        try:
            size = source.stat().st_size
        except OSError:
            size = 0
        return [Segment(0, size)]
