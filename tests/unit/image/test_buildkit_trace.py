"""shardrun.buildkit_trace: StatusResponse decoding and merging re-sent vertexes.

The messages are built with a tiny protobuf encoder below, so the tests need no protobuf
package. Field numbers are moby.buildkit.v1's (control.proto): StatusResponse vertexes=1,
statuses=2, logs=3, warnings=4; Vertex digest=1, inputs=2, name=3, cached=4, started=5,
completed=6, error=7; VertexLog vertex=1, timestamp=2, stream=3, msg=4.
"""

from __future__ import annotations

import base64
import struct

import pytest

from shardrun.image.buildkit_trace import Progress, StepChange, Vertex, VertexLog, decode

# --- a minimal protobuf encoder ------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def uint(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def lendelim(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return tag(number, 2) + varint(len(data)) + data


def fixed64(number: int, value: int) -> bytes:
    return tag(number, 1) + struct.pack("<Q", value)


def fixed32(number: int, value: int) -> bytes:
    return tag(number, 5) + struct.pack("<I", value)


def timestamp(seconds: int, nanos: int = 0) -> bytes:
    return uint(1, seconds) + uint(2, nanos)


def vertex(
    digest: str,
    name: str = "",
    *,
    cached: bool = False,
    started: bytes | None = None,
    completed: bytes | None = None,
    error: str = "",
    extra: bytes = b"",
) -> bytes:
    out = lendelim(1, digest)
    if name:
        out += lendelim(3, name)
    if cached:
        out += uint(4, 1)
    if started is not None:
        out += lendelim(5, started)
    if completed is not None:
        out += lendelim(6, completed)
    if error:
        out += lendelim(7, error)
    return out + extra


def vertex_log(digest: str, msg: bytes, stream: int = 1) -> bytes:
    return (
        lendelim(1, digest)
        + lendelim(2, timestamp(1_700_000_000))
        + uint(3, stream)
        + (lendelim(4, msg))
    )


def response(vertexes=(), logs=(), extra: bytes = b"") -> str:
    """A base64 StatusResponse, as the Engine API puts it in a trace message's `aux`."""
    body = b"".join(lendelim(1, v) for v in vertexes) + b"".join(lendelim(3, lg) for lg in logs)
    return base64.b64encode(body + extra).decode()


def feed(progress: Progress, *vertexes: bytes, logs=()):
    return progress.update(decode(response(vertexes, logs)))


T0 = timestamp(1_700_000_000, 250_000_000)
T1 = timestamp(1_700_000_003, 750_000_000)

# --- decode --------------------------------------------------------------------------------


def test_decode_reads_vertex_fields_and_multibyte_varints():
    status = decode(
        response(
            [
                vertex("sha256:a", "[1/2] FROM python", started=T0, completed=T1),
                vertex("sha256:b", "[2/2] RUN false", cached=True, error="exit code: 1"),
            ]
        )
    )
    assert status.vertexes == [
        Vertex("sha256:a", "[1/2] FROM python", False, 1_700_000_000.25, 1_700_000_003.75),
        Vertex("sha256:b", "[2/2] RUN false", cached=True, error="exit code: 1"),
    ]
    assert status.logs == []


def test_decode_reads_logs():
    status = decode(
        response(logs=[vertex_log("sha256:a", b"out\n"), vertex_log("sha256:a", b"e", 2)])
    )
    assert status.logs == [VertexLog("sha256:a", 1, b"out\n"), VertexLog("sha256:a", 2, b"e")]


def test_decode_skips_unknown_fields_of_every_wire_type():
    vertex_status = lendelim(1, "copy") + lendelim(2, "sha256:a") + uint(4, 10) + uint(5, 20)
    noise = fixed64(14, 2**64 - 1) + fixed32(15, 0xFFFFFFFF) + uint(16, 300) + lendelim(17, "x")
    aux = response(
        [vertex("sha256:a", "step", started=T0, extra=lendelim(2, "sha256:input") + noise)],
        [vertex_log("sha256:a", b"line\n") + noise],
        extra=lendelim(2, vertex_status) + lendelim(4, lendelim(3, "a warning")) + noise,
    )
    status = decode(aux)
    assert status.vertexes == [Vertex("sha256:a", "step", started=1_700_000_000.25)]
    assert status.logs == [VertexLog("sha256:a", 1, b"line\n")]


def test_decode_of_an_empty_message_is_empty():
    status = decode("")
    assert status.vertexes == [] and status.logs == []


# --- Progress: step changes ----------------------------------------------------------------


def test_a_resent_vertex_is_started_then_done_exactly_once():
    progress = Progress()
    sends = [
        vertex("sha256:a", "[1/1] RUN make"),  # announced, not started
        vertex("sha256:a", "[1/1] RUN make", started=T0),
        vertex("sha256:a", "[1/1] RUN make", started=T0),  # re-sent unchanged
        vertex("sha256:a", "[1/1] RUN make", started=T0, completed=T1),
        vertex("sha256:a", "[1/1] RUN make", started=T0, completed=T1),
    ]
    changes = [feed(progress, v)[0] for v in sends]
    assert changes == [
        [],
        [StepChange("sha256:a", "[1/1] RUN make", "started")],
        [],
        [StepChange("sha256:a", "[1/1] RUN make", "done")],
        [],
    ]


def test_a_later_send_without_the_name_keeps_it():
    progress = Progress()
    feed(progress, vertex("sha256:a", "[1/1] RUN make", started=T0))
    changes, _ = feed(progress, vertex("sha256:a", completed=T1))
    assert changes == [StepChange("sha256:a", "[1/1] RUN make", "done")]


def test_a_cached_vertex_is_cached_and_never_started_or_done():
    progress = Progress()
    cached = vertex("sha256:c", "[2/3] COPY . .", cached=True, started=T0, completed=T0)
    first, _ = feed(progress, cached)
    again, _ = feed(progress, cached)
    assert first == [StepChange("sha256:c", "[2/3] COPY . .", "cached")]
    assert again == []


def test_a_failed_vertex_is_an_error_with_its_message_and_not_done():
    progress = Progress()
    started, _ = feed(progress, vertex("sha256:e", "RUN false", started=T0))
    failed, _ = feed(
        progress, vertex("sha256:e", "RUN false", started=T0, completed=T1, error="exit code: 1")
    )
    again, _ = feed(
        progress, vertex("sha256:e", "RUN false", started=T0, completed=T1, error="exit code: 1")
    )
    assert [c.state for c in started] == ["started"]
    assert failed == [StepChange("sha256:e", "RUN false", "error", "exit code: 1")]
    assert again == []


def test_several_vertexes_in_one_message_each_change():
    changes, _ = feed(
        Progress(),
        vertex("sha256:a", "a", started=T0),
        vertex("sha256:b", "b", cached=True, started=T0, completed=T0),
    )
    assert [(c.name, c.state) for c in changes] == [("a", "started"), ("b", "cached")]


# --- Progress: log lines -------------------------------------------------------------------


def test_log_bytes_split_across_messages_are_joined_into_whole_lines():
    progress = Progress()
    feed(progress, vertex("sha256:a", "RUN make", started=T0))
    _, first = feed(progress, logs=[vertex_log("sha256:a", b"compil")])
    _, second = feed(progress, logs=[vertex_log("sha256:a", b"ing x\r\nlinking\nwar")])
    _, third = feed(progress, logs=[vertex_log("sha256:a", b"ning: y\n")])
    assert first == []
    assert second == [("RUN make", "compiling x"), ("RUN make", "linking")]
    assert third == [("RUN make", "warning: y")]


def test_partial_lines_are_kept_per_vertex():
    progress = Progress()
    _, lines = feed(progress, logs=[vertex_log("sha256:a", b"a-"), vertex_log("sha256:b", b"b-")])
    _, lines = feed(
        progress, logs=[vertex_log("sha256:b", b"end\n"), vertex_log("sha256:a", b"end\n")]
    )
    # No vertex was announced, so lines are attributed to the digest.
    assert lines == [("sha256:b", "b-end"), ("sha256:a", "a-end")]


@pytest.mark.parametrize(
    ("count", "expected"),
    [(20, ["one", "two", "thr"]), (2, ["two", "thr"]), (1, ["thr"])],
)
def test_tail_returns_the_last_lines_including_an_unterminated_one(count, expected):
    progress = Progress()
    feed(progress, logs=[vertex_log("sha256:a", b"one\ntwo\nthr")])
    assert progress.tail("sha256:a", count) == expected


def test_tail_of_a_terminated_log_and_of_an_unknown_vertex():
    progress = Progress()
    feed(progress, logs=[vertex_log("sha256:a", b"one\ntwo\n")])
    assert progress.tail("sha256:a") == ["one", "two"]
    assert progress.tail("sha256:unknown") == []


def test_tail_keeps_a_bounded_history():
    progress = Progress()
    feed(progress, logs=[vertex_log("sha256:a", b"".join(b"%d\n" % i for i in range(200)))])
    assert progress.tail("sha256:a", 5) == ["195", "196", "197", "198", "199"]
    assert len(progress.tails["sha256:a"]) <= 50
