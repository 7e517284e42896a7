"""shardrun.state.files: the atomic writer every report and record uses."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from shardrun.state import files, layout
from shardrun.state.files import write_atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path):
    path = tmp_path / "report.json"
    path.write_text("old")
    write_atomic(path, "new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_atomic_makes_the_file_world_readable_whatever_the_umask(tmp_path: Path):
    path = tmp_path / "timings.json"
    previous = os.umask(0o077)
    try:
        write_atomic(path, "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_atomic_keeps_the_old_file_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "timings.json"
    path.write_text("old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["timings.json"]


def _write_forever(final: Path, ready) -> None:
    # As an OCI-layout cut does: the file's lock held, its temp file half written.
    with files.exclusive(final), files.temp_file(final, "an OCI layout", 1) as tmp:
        tmp.file.write(b"half a layout")
        tmp.file.flush()
        ready.set()
        time.sleep(600)


@pytest.mark.parametrize("kind", ["oci", "thin", "full", "blobs"])
def test_the_lock_and_temp_file_of_a_killed_writer_are_swept_for_every_cache_file(
    tmp_path: Path, kind: str
):
    cache = layout.cache(tmp_path)
    cache.mkdir()
    image_id = "sha256:" + "ab" * 32
    final = {
        "oci": layout.oci_layout(cache, image_id, 2),
        "thin": layout.thin_tarball(layout.tarball(cache, image_id), 1),
        "full": layout.tarball(cache, image_id),
        "blobs": layout.blob_names(cache),
    }[kind]
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    writer = ctx.Process(target=_write_forever, args=(final, ready))
    writer.start()
    try:
        assert ready.wait(10)
        left = sorted(p.name for p in cache.iterdir())
        assert layout.lock(final).name in left and len(left) == 2  # the lock and the temp file
        assert files.sweep_stale_temp(tmp_path) == 0  # its writer lives: both stay
        assert sorted(p.name for p in cache.iterdir()) == left
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()

    assert files.sweep_stale_temp(tmp_path) == 1
    assert list(cache.iterdir()) == []
