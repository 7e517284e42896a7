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
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shardrun.distribute.artifact import layers
from shardrun.distribute.compress.compressed_parts import (
    Compressed,
    Compression,
    Part,
    Small,
    Source,
)
from shardrun.distribute.compress.segments import SHARED_LEAST, Segment, cut
from shardrun.model.errors import InfraError


class Archive:
    """An archive's compressed stream: its parts in order, each compressed once for every
    worker and every archive that holds the same layer."""

    def __init__(self, source: Source, codec: str, parts: list[Part]) -> None:
        self.source, self.codec, self._parts = source, codec, parts
        self._stop = threading.Event()
        name = f"{codec} {source.path.name}"
        producer = threading.Thread(target=self._produce, daemon=True, name=name)
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
            self.source.path.name,
            "",
            self.codec,
            sum(p.end - p.start for p in small),
            sum(p.expected_size() or 0 for p in small),
            cpu,
            cpu,
        )

    def stop(self) -> None:
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
                try:
                    opened = Source(source)
                except OSError as exc:
                    raise InfraError(
                        f"compressing the image for the workers failed: {exc}"
                    ) from exc
                parts = [self._part(opened, codec, s) for s in _segments(opened)]
                self._archives[key] = Archive(opened, codec, parts)
            return self._archives[key]

    def _part(self, source: Source, codec: str, segment: Segment) -> Part:
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
            archive.stop()
        for part in large:
            part.close()  # its process gone, nothing reads an archive's file any more
        for archive in archives:
            archive.source.close()


def _segments(source: Source) -> list[Segment]:
    """The archive's segments; one of it all if it cannot be read as an archive (the
    readers then get the reading's error, or its bytes as they are)."""
    size = os.fstat(source.fd).st_size
    try:
        # A descriptor of its own for tarfile, which moves its position; the parts read
        # the archive by offset.
        with os.fdopen(os.dup(source.fd), "rb") as archive:
            return cut(archive, size)
    except layers.UNREADABLE:
        return [Segment(0, size)]
