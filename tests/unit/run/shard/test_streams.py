"""shardrun.streams.Demux: the engine's multiplexed attach stream, in blocks of any size."""

from __future__ import annotations

import struct

from shardrun.run.shard.streams import Demux


def frame(payload: bytes, stream: int = 1) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_whole_frames_give_their_payloads_in_order_whatever_the_stream():
    data = frame(b"out 1\n") + frame(b"err 1\n", stream=2) + frame(b"out 2\n")
    assert Demux().feed(data) == b"out 1\nerr 1\nout 2\n"


def test_a_frame_cut_anywhere_waits_for_its_rest():
    data = frame(b"hello ") + frame(b"world\n", stream=2) + frame(b"")
    for cut in range(len(data) + 1):
        demux = Demux()
        assert demux.feed(data[:cut]) + demux.feed(data[cut:]) == b"hello world\n", cut
        assert demux.pending == 0


def test_byte_by_byte_is_the_same_as_all_at_once():
    data = b"".join(frame(bytes([65 + i]) * i, stream=1 + i % 2) for i in range(50))
    demux = Demux()
    assert b"".join(demux.feed(data[i : i + 1]) for i in range(len(data))) == Demux().feed(data)


def test_a_stream_cut_short_leaves_the_partial_frame_pending():
    demux = Demux()
    assert demux.feed(frame(b"complete") + frame(b"truncated")[:-3]) == b"complete"
    assert demux.pending == 8 + 6
