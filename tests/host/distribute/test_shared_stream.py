"""One compressed stream per tarball and codec, read by many workers as it is written."""

from __future__ import annotations

import io
import os
import threading
import zlib
from pathlib import Path

import pytest

from shardrun.distribute import codecs
from shardrun.distribute.shared_stream import SharedStreams
from shardrun.model.errors import InfraError


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    path = tmp_path / "image.tar"
    # Ordinary content (it compresses) and some random bytes (they do not), 12 MB.
    with open(path, "wb") as f:
        for i in range(4):
            f.write(b"".join(b"%d\n" % n for n in range(i * 200_000, (i + 1) * 200_000)))
            f.write(os.urandom(1 << 20))
    return path


def _read_all(stream, into: list, pace=None) -> None:
    into.append(b"".join(stream.chunks(pace=pace)))


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_readers_at_once_get_one_stream_that_decompresses_to_the_tarball(tarball, codec):
    streams = SharedStreams()
    try:
        first, second = streams.get(tarball, codec), streams.get(tarball, codec)
        assert first is second  # compressed once, whatever the number of workers
        got: list[bytes] = []
        readers = [threading.Thread(target=_read_all, args=(first, got)) for _ in range(3)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout=60)
        assert len(got) == 3 and got[0] == got[1] == got[2]
        assert codecs.sniff(got[0][:512]) == codec
        raw = b"".join(codecs.decompressed(io.BytesIO(got[0]), codec))
        assert zlib.crc32(raw) == zlib.crc32(tarball.read_bytes())
        assert len(got[0]) < 0.8 * tarball.stat().st_size
        assert first.expected_size() == len(got[0])  # exact once done
        # A reader that comes after it is written reads the same file from its start.
        assert b"".join(streams.get(tarball, codec).chunks()) == got[0]
    finally:
        streams.close()
    assert [p.name for p in tarball.parent.iterdir()] == ["image.tar"]  # no temp file left


def test_a_stream_of_another_codec_is_another_file(tarball):
    streams = SharedStreams()
    try:
        assert streams.get(tarball, "gzip") is not streams.get(tarball, "zstd")
    finally:
        streams.close()


def test_a_failed_compression_is_an_infra_error_for_every_reader(tmp_path: Path):
    tarball = tmp_path / "image.tar"
    tarball.mkdir()  # it cannot be read: as a tarball removed under the run
    streams = SharedStreams()
    try:
        stream = streams.get(tarball, "gzip")
        for _ in range(2):
            with pytest.raises(InfraError, match="compressing the image"):
                b"".join(stream.chunks())
    finally:
        streams.close()


def test_a_run_ending_mid_stream_stops_its_readers_and_leaves_no_file(tarball):
    streams = SharedStreams()
    stream = streams.get(tarball, "zstd")
    reader = stream.chunks()
    next(reader)  # a worker is being sent the first part
    streams.close()
    with pytest.raises(InfraError):
        b"".join(reader)
    assert [p.name for p in tarball.parent.iterdir()] == ["image.tar"]
    with pytest.raises(InfraError, match="ending"):
        streams.get(tarball, "zstd")
