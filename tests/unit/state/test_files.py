"""shardrun.state.files: the atomic writer every report and record uses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shardrun.state import files
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
