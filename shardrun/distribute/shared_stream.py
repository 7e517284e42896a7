"""One compressed stream of a tarball for every worker that gets it in that codec.

The first worker to ask starts a thread that compresses the tarball into a temp file
beside it, as fast as the runner's cores allow; that worker and every later one read the
file as it grows, each at its own link's pace. So compressing costs the runner's CPU once
whatever the number of workers, and a fast worker never waits for a slow one. The files
live for the run (`SharedStreams` closes them); they are not kept in the cache, where the
raw tarballs stay the one verified form. An interrupted run leaves none: they are
registered temp files, removed as the process exits, or by the next run's sweep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from shardrun.distribute import codecs
from shardrun.model.errors import InfraError
from shardrun.state.files import temp_file

_CHUNK = 1 << 20


class Compressed:
    """The tarball at `source` being compressed (or compressed) in `codec`."""

    def __init__(self, source: Path, codec: str) -> None:
        self.source, self.codec = source, codec
        self.raw_size = source.stat().st_size
        self._cond = threading.Condition()
        self._path: Path | None = None
        self._written = 0  # compressed bytes in the file so far
        self._read = 0  # of the tarball, compressed so far
        self._done = False
        self._error: BaseException | None = None
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._compress, daemon=True, name=f"{codec} {source.name}"
        )
        self._thread.start()

    def _compress(self) -> None:
        try:
            final = self.source.with_name(f"{self.source.name}.{self.codec}")
            with temp_file(final, "a compressed copy of the image", self.raw_size) as tmp:
                with self._cond:
                    self._path = tmp.path
                    self._cond.notify_all()
                out = cast(BinaryIO, _Grows(tmp.file, self._grew))  # it writes and flushes
                sink = codecs.compressor(self.codec, out)
                with open(self.source, "rb") as src:
                    while not self._closing.is_set() and (block := src.read(_CHUNK)):
                        sink.write(block)
                        with self._cond:
                            self._read += len(block)
                sink.close()
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

    def _grew(self, size: int) -> None:
        with self._cond:
            self._written += size
            self._cond.notify_all()

    def expected_size(self) -> int:
        """The compressed size as far as can be told yet: exact once it is done."""
        with self._cond:
            if self._done or not self._read:
                return self._written or self.raw_size
            return max(self._written, round(self._written * self.raw_size / self._read))

    def chunks(
        self, progress: Callable[[int], None] = lambda sent: None, pace: Any = None
    ) -> Iterator[bytes]:
        """The compressed stream from its start, as soon as each part is written; the time
        spent waiting for the compressor is added to `pace.waited`, if given."""
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
                progress(sent)
                yield chunk

    def _raise_if_failed(self) -> None:
        if self._closing.is_set():
            raise InfraError("the run ended during the transfer")
        if self._error is not None:
            raise InfraError(f"compressing the image for the workers failed: {self._error}")

    def close(self) -> None:
        self._closing.set()
        with self._cond:
            self._cond.notify_all()  # readers waiting for more: there is none
        self._thread.join(timeout=30)


class _Grows:
    """The temp file as the compressor's output: every write is flushed to the file and
    counted, so readers can send it at once."""

    def __init__(self, out, grew: Callable[[int], None]) -> None:
        self._out, self._grew = out, grew

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self._out.flush()
        self._grew(len(data))
        return len(data)

    def flush(self) -> None:
        self._out.flush()


class SharedStreams:
    """The run's compressed streams, one per (tarball, codec), closed at its end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[tuple[Path, str], Compressed] = {}
        self._closed = False

    def get(self, source: Path, codec: str) -> Compressed:
        with self._lock:
            if self._closed:
                raise InfraError("the run is ending; no more transfers")
            key = (source, codec)
            if key not in self._streams:
                self._streams[key] = Compressed(source, codec)
            return self._streams[key]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            streams = list(self._streams.values())
        for stream in streams:
            stream.close()
