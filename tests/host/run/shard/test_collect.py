"""shardrun.collect against the fake engine's archive endpoint: what is copied out of a
shard's container, where it lands, and what the size cap leaves out."""

from __future__ import annotations

import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from shardrun.engine.api import ContainerRequest
from shardrun.model.results import Status
from shardrun.model.shard import Shard
from shardrun.model.text import counted
from shardrun.run.shard import collect
from tests.fakes.engine import FakeEngine

FILES = {
    "/out/report.txt": b"report",
    "/out/deep/trace.log": b"t" * 100,
    "/shots/a.png": b"png-a",
    "/shots/b.jpg": b"jpg-b",
    "/shots/sub/c.png": b"png-c",
    "/tmp/junit.xml": b"<testsuite/>",
}


def container(engine: FakeEngine, shard: Shard) -> str:
    engine.script(shard.name, files=FILES)
    return engine.create(ContainerRequest("img", shard))


def relative(paths, root: Path) -> set[str]:
    return {str(Path(p).relative_to(root)) for p in paths}


@pytest.mark.parametrize(
    "status, copied",
    [
        (Status.FAIL, True),
        (Status.TIMEOUT, True),
        (Status.ERROR, True),
        (Status.PASS, False),
    ],
)
def test_artifacts_are_copied_on_failure_by_default(tmp_path, status, copied):
    engine = FakeEngine()
    shard = Shard(name="s", artifacts=("/out",))
    got = collect.collect(engine, container(engine, shard), shard, status, tmp_path)

    expected = {"artifacts/out/report.txt", "artifacts/out/deep/trace.log"} if copied else set()
    assert relative(got.files, tmp_path) == expected
    if copied:
        assert (tmp_path / "artifacts/out/deep/trace.log").read_bytes() == b"t" * 100


def test_always_copies_a_passing_shards_artifacts_and_globs_stay_in_one_folder(tmp_path):
    engine = FakeEngine()
    shard = Shard(name="s", artifacts=("/shots/*.png",), artifacts_when="always")
    got = collect.collect(engine, container(engine, shard), shard, Status.PASS, tmp_path)

    assert relative(got.files, tmp_path) == {"artifacts/shots/a.png"}
    assert got.note == ""


def test_the_cap_leaves_files_out_and_says_which(tmp_path):
    engine = FakeEngine()
    shard = Shard(name="s", artifacts=("/out", "/shots"), artifacts_max=110)
    got = collect.collect(engine, container(engine, shard), shard, Status.FAIL, tmp_path)

    written = sum((tmp_path / p).stat().st_size for p in relative(got.files, tmp_path))
    assert written <= 110
    # The first file that does not fit ends the read of its folder's archive (skipping it
    # would mean reading it); it is named with its size, and the note says the rest was
    # not read. Later patterns still get what fits.
    over = [item for item in got.left_out if "over artifacts-max" in item]
    assert over and all("bytes, over artifacts-max" in item for item in over)
    assert got.note.startswith(f"{counted(got.left_out_count, 'artifact')} left out: ")
    assert "not read" in got.left_out[0]


def test_a_missing_path_is_reported_and_the_junit_file_is_copied_even_on_a_pass(tmp_path):
    engine = FakeEngine()
    shard = Shard(
        name="s",
        artifacts=("/nowhere", "/out/*.nope"),
        artifacts_when="always",
        junit="/tmp/junit.xml",
    )
    got = collect.collect(engine, container(engine, shard), shard, Status.PASS, tmp_path)

    assert got.missing == ("/nowhere", "/out/*.nope")
    assert "no such artifact: /nowhere, /out/*.nope" in got.note
    assert got.junit == str(tmp_path / "junit.xml")
    # Rewritten as it came out: well-formed, and with the (no) cases the shard wrote.
    assert ET.parse(tmp_path / "junit.xml").getroot().tag == "testsuites"
    assert list(ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")) == []


def test_a_member_climbing_out_of_its_folder_stays_under_the_artifacts_folder(tmp_path):
    chunks = [_tar({"out/../../../etc/evil": b"x"})]
    files: list[str] = []
    collect._extract(
        iter(chunks), "/", "/", tmp_path / "artifacts", collect._Budget(1000, 60), files, ()
    )
    assert files == [str(tmp_path / "artifacts" / "etc" / "evil")]


def _tar(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class _SlowEngine:
    """An engine whose archive stream trickles: one small block a second, forever."""

    closed = False

    def copy_out(self, container_id, path, chunk_size):
        member = tarfile.TarInfo("out/slow.bin")
        member.size = 1 << 30
        yield member.tobuf()
        try:
            while True:
                time.sleep(0.05)
                yield b"\0" * 512
        finally:
            _SlowEngine.closed = True


def test_collection_stops_at_its_time_limit_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "COLLECT_WITHIN", 0.3)
    shard = Shard(name="s", artifacts=("/out",), artifacts_max=2 << 30)
    started = time.monotonic()
    got = collect.collect(_SlowEngine(), "c", shard, Status.FAIL, tmp_path)

    assert time.monotonic() - started < 5
    assert got.left_out == ("/out: not read: past the 0.3s limit",)
    assert _SlowEngine.closed  # the engine's stream was ended, not left to run on
