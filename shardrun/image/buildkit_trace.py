"""Decode BuildKit's `moby.buildkit.trace` progress messages.

The Engine API wraps each `moby.buildkit.v1.StatusResponse` protobuf as base64 in an
`aux` field. We read the few fields we show with a small wire-format reader rather than
depend on protobuf and generated classes for three messages. Field numbers are from
moby/buildkit api/services/control/control.proto.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, Any]]:  # int or bytes, as the schema says
    """Yield (field number, value): ints for varints, bytes for everything else."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == _BYTES:
            size, pos = _varint(buf, pos)
            yield number, buf[pos : pos + size]
            pos += size
        elif wire == _FIXED64:
            yield number, buf[pos : pos + 8]
            pos += 8
        elif wire == _FIXED32:
            yield number, buf[pos : pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _timestamp(buf: bytes) -> float:
    seconds = nanos = 0
    for number, value in _fields(buf):
        if number == 1:
            seconds = value
        elif number == 2:
            nanos = value
    return seconds + nanos / 1e9


@dataclass
class Vertex:
    digest: str
    name: str = ""
    cached: bool = False
    started: float | None = None
    completed: float | None = None
    error: str = ""


@dataclass
class VertexLog:
    vertex: str
    stream: int
    data: bytes


@dataclass
class Status:
    vertexes: list[Vertex] = field(default_factory=list)
    logs: list[VertexLog] = field(default_factory=list)


def _vertex(buf: bytes) -> Vertex:
    vertex = Vertex(digest="")
    for number, value in _fields(buf):
        if number == 1:
            vertex.digest = value.decode()
        elif number == 3:
            vertex.name = value.decode(errors="replace")
        elif number == 4:
            vertex.cached = bool(value)
        elif number == 5:
            vertex.started = _timestamp(value)
        elif number == 6:
            vertex.completed = _timestamp(value)
        elif number == 7:
            vertex.error = value.decode(errors="replace")
    return vertex


def _log(buf: bytes) -> VertexLog:
    log = VertexLog(vertex="", stream=1, data=b"")
    for number, value in _fields(buf):
        if number == 1:
            log.vertex = value.decode()
        elif number == 3:
            log.stream = value
        elif number == 4:
            log.data = value
    return log


def decode(aux: str) -> Status:
    """Decode one base64 `aux` payload of a `moby.buildkit.trace` message."""
    status = Status()
    for number, value in _fields(base64.b64decode(aux)):
        if number == 1:
            status.vertexes.append(_vertex(value))
        elif number == 3:
            status.logs.append(_log(value))
    return status


@dataclass(frozen=True)
class StepChange:
    digest: str
    name: str
    state: str  # "started", "cached", "done" or "error"
    error: str = ""


class Progress:
    """Merges the re-sent vertexes by digest into step changes and whole log lines."""

    def __init__(self) -> None:
        self.vertexes: dict[str, Vertex] = {}
        self._partial: dict[str, bytes] = {}
        self.tails: dict[str, list[str]] = {}

    def update(self, status: Status) -> tuple[list[StepChange], list[tuple[str, str]]]:
        changes = [c for v in status.vertexes for c in self._merge(v)]
        lines = [(self.name(log.vertex), ln) for log in status.logs for ln in self._lines(log)]
        return changes, lines

    def name(self, digest: str) -> str:
        vertex = self.vertexes.get(digest)
        return vertex.name if vertex else digest

    def _merge(self, new: Vertex) -> list[StepChange]:
        old = self.vertexes.get(new.digest, Vertex(digest=new.digest))
        merged = Vertex(
            digest=new.digest,
            name=new.name or old.name,
            cached=new.cached or old.cached,
            started=new.started or old.started,
            completed=new.completed or old.completed,
            error=new.error or old.error,
        )
        self.vertexes[new.digest] = merged
        changes = []
        if merged.started and not old.started and not merged.cached:
            changes.append(StepChange(merged.digest, merged.name, "started"))
        if merged.cached and not old.cached:
            changes.append(StepChange(merged.digest, merged.name, "cached"))
        if merged.error and not old.error:
            changes.append(StepChange(merged.digest, merged.name, "error", merged.error))
        elif merged.completed and not old.completed and not merged.cached and not merged.error:
            changes.append(StepChange(merged.digest, merged.name, "done"))
        return changes

    def _lines(self, log: VertexLog) -> list[str]:
        data = self._partial.pop(log.vertex, b"") + log.data
        *complete, rest = data.split(b"\n")
        if rest:
            self._partial[log.vertex] = rest
        lines = [ln.decode(errors="replace").rstrip("\r") for ln in complete]
        tail = self.tails.setdefault(log.vertex, [])
        tail.extend(lines)
        del tail[:-50]
        return lines

    def tail(self, digest: str, count: int = 20) -> list[str]:
        """The last lines a step printed, including an unterminated last line."""
        lines = list(self.tails.get(digest, []))
        if digest in self._partial:
            lines.append(self._partial[digest].decode(errors="replace"))
        return lines[-count:]
