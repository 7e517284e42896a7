"""One compressed stream per tarball and codec, read by many workers as it is written."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from shardrun.distribute.artifact import oci_layout
from shardrun.distribute.compress import codecs
from shardrun.distribute.compress.compressed_parts import CHILD, Source
from shardrun.distribute.compress.shared_stream import SharedStreams
from shardrun.model.errors import InfraError
from tests.unit.distribute.artifact.test_layers import ID1, ID2, ID3, build_tarball, layer_tar


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


def test_its_figures_count_every_byte_and_the_compressing_process_cpu(tarball):
    streams = SharedStreams()
    try:
        data = b"".join(streams.get(tarball, "gzip").chunks())
        # The child reports its CPU after its last write: the line may trail the bytes.
        deadline = time.monotonic() + 10
        while not streams.figures() and time.monotonic() < deadline:
            time.sleep(0.01)
        [figures] = streams.figures()
        assert (figures.archive, figures.layer, figures.codec) == ("image.tar", "", "gzip")
        assert (figures.raw, figures.compressed) == (tarball.stat().st_size, len(data))
        assert 0 < figures.cpu < 30 and 0 < figures.seconds < 30
    finally:
        streams.close()


def test_a_killed_runner_leaves_no_compressor_running(tmp_path: Path):
    # A sparse terabyte: minutes of compressing, so a compressor still there seconds after
    # its runner was killed would have run on for nobody.
    source = tmp_path / "image.tar"
    with open(source, "wb") as f:
        f.truncate(1 << 40)
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(source)], cwd=Path(__file__).parents[4]
    )
    child = None
    try:
        child = _compressor_of(runner.pid)
        time.sleep(0.5)  # well into it
        runner.kill()
        runner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the compressor outlived its runner"
    finally:
        runner.kill()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


RUNNER = """
import sys, time
from pathlib import Path
from shardrun.distribute.compress.compressed_parts import Compressed, Source
Compressed(Source(Path(sys.argv[1])), "gzip", 0, 1 << 40).begin()
time.sleep(600)
"""


def _compressor_of(runner: int) -> int:
    """The compressing process the runner started."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                    status = (entry / "status").read_text()
                    if CHILD.encode() in argv and f"\nPPid:\t{runner}\n" in status:
                        return int(entry.name)
        time.sleep(0.05)
    raise AssertionError("no compressor process was started")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped; its reaper is gone with the runner


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_layer_in_two_archives_is_compressed_once_and_each_stream_decodes_whole(
    tmp_path: Path, codec
):
    # A docker archive of three layers and the OCI layout of its top two, as a graph-driver
    # worker and a containerd-store worker of one run get them.
    docker = tmp_path / "image.tar"
    big = {ID1: layer_tar("base.txt", 3 << 20), ID2: layer_tar("app.txt", 2 << 20),
           ID3: layer_tar("top.txt", 20_000)}  # fmt: skip
    diff_ids = build_tarball(docker, [ID1, ID2, ID3], big)
    oci = tmp_path / "image.oci1.tar"
    with open(oci, "wb") as out:
        oci_layout.write_from_save([docker.read_bytes()], {diff_ids[0]}, "shardrun/image:x", out)
    streams = SharedStreams()
    try:
        got = {}
        for archive in (docker, oci):
            data = b"".join(streams.get(archive, codec).chunks())
            got[archive] = data
            raw = b"".join(codecs.decompressed(io.BytesIO(data), codec))
            assert raw == archive.read_bytes()
        deadline = time.monotonic() + 10
        while len(streams.figures()) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)  # the children's CPU lines may trail their last bytes
        figures = streams.figures()
    finally:
        streams.close()
    layers = [f.layer for f in figures if f.layer]
    assert sorted(layers) == sorted(diff_ids[:2])  # app.txt's layer once, not twice
    assert sorted(f.archive for f in figures if not f.layer) == ["image.oci1.tar", "image.tar"]
    total = sum(f.compressed for f in figures)
    # Every compressed byte sent is counted once: the shared layer in both streams.
    app = next(f for f in figures if f.layer == diff_ids[1])
    assert sum(len(d) for d in got.values()) == total + app.compressed
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_archive_replaced_or_pruned_mid_stream_is_still_sent_as_it_was(tmp_path: Path):
    # Another run may rename a new file over a cached archive, or prune it, while this
    # run is sending it: every part reads the one file opened when the stream began.
    path = tmp_path / "image.tar"
    build_tarball(path, [ID1, ID2, ID3], {ID1: layer_tar("base.txt", 3 << 20),
                  ID2: layer_tar("app.txt", 2 << 20), ID3: layer_tar("top.txt", 20_000)})  # fmt: skip
    original = path.read_bytes()
    streams = SharedStreams()
    try:
        chunks = streams.get(path, "zstd").chunks()
        first = next(chunks)  # the first part is on its way
        other = tmp_path / "other.tar"
        other.write_bytes(os.urandom(len(original)))
        os.replace(other, path)
        data = first + b"".join(chunks)
        path.unlink()
        assert b"".join(codecs.decompressed(io.BytesIO(data), "zstd")) == original
    finally:
        streams.close()


def test_a_closed_source_is_never_read_again_whatever_its_number_now_names(tmp_path: Path):
    path = tmp_path / "image.tar"
    path.write_bytes(b"archive bytes")
    source = Source(path)
    assert source.read(0, 7) == b"archive"
    source.close()
    source.close()  # twice is once
    other = tmp_path / "other"
    other.write_bytes(b"someone else's file")
    # The next file opened may well get the closed descriptor's number.
    with open(other, "rb"), pytest.raises(InfraError, match="ended"):
        source.read(0, 7)
