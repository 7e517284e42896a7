"""The parts of an archive's compressed stream (shared_stream): a large range of bytes
compressed by a process of its own (compress_child) into a temp file that readers follow as
it grows, or a small one compressed whole in the runner. Each says what it cost.
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
from shardrun.distribute.compress import codecs
from shardrun.model.errors import InfraError
from shardrun.state.files import temp_file

_CHUNK = 1 << 20
CHILD = "shardrun.distribute.compress.compress_child"


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


class Source:
    """An archive opened once for the run: every part of it reads this one open file
    (by offset, never moving a shared position), so a file renamed over it or pruned
    from the cache meanwhile changes nothing of what is sent. Its descriptor is used
    under a lock, so once closed, its number (which the process may give to another
    file) is never read again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._closed = False

    def read(self, start: int, end: int) -> bytes:
        with self._lock:
            if self._closed:
                raise InfraError("the run ended during the transfer")
            return b"".join(codecs.blocks_of(self.fd, start, end))

    def spawn(self, start: Callable[[int], subprocess.Popen[str]]) -> subprocess.Popen[str]:
        """`start(fd)` while the descriptor is open: a process it starts inherits it."""
        with self._lock:
            if self._closed:
                raise InfraError("the run ended before the image was compressed")
            return start(self.fd)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self.fd)


class Part(Protocol):
    start: int
    end: int

    def begin(self) -> None: ...
    def wait(self) -> None: ...
    def read(self, pace: Any) -> Iterator[bytes]: ...
    def expected_size(self) -> int | None: ...


class Compressed:
    """Bytes [start, end) of `source` compressed in `codec` by a child process into a temp
    file that readers follow as it grows. Nothing runs until `begin`."""

    def __init__(self, source: Source, codec: str, start: int, end: int, key: str = "") -> None:
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
                name = f"{self.codec} {self.source.path.name}:{self.start}"
                self._thread = threading.Thread(target=self._compress, daemon=True, name=name)
                self._thread.start()

    def _compress(self) -> None:
        try:
            path = self.source.path
            final = path.with_name(f"{path.name}.{self.start}.{self.codec}")
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

    def _start_child(self, out: int) -> subprocess.Popen[str]:
        # The child imports this very package, wherever it was imported from.
        where = str(Path(shardrun.__file__).parent.parent)
        path = os.pathsep.join(p for p in (where, os.environ.get("PYTHONPATH")) if p)

        def start(fd: int) -> subprocess.Popen[str]:
            span = [str(fd), str(self.start), str(self.end), str(out)]
            return subprocess.Popen(
                [sys.executable, "-m", CHILD, self.codec, *span],
                pass_fds=(fd, out),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": path},
                start_new_session=True,  # a Ctrl-C is the runner's to handle, not the child's
            )

        child = self.source.spawn(start)
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
                self.source.path.name,
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

    def __init__(self, source: Source, codec: str, start: int, end: int) -> None:
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
                raw = self.source.read(self.start, self.end)
            except OSError as exc:
                raise InfraError(f"compressing the image for the workers failed: {exc}") from exc
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
