"""run/junit_intake: a JUnit file a container wrote is read within limits, or not at all."""

from __future__ import annotations

import io
from pathlib import Path

from shardrun.run.shard.junit_intake import take_in
from shardrun.run.shard.masking import Masker


def test_an_unknown_encoding_is_a_file_not_read_not_a_crash(tmp_path: Path) -> None:
    data = b'<?xml version="1.0" encoding="x-no-such-codec"?><testsuite/>'
    intake = take_in(io.BytesIO(data), len(data), tmp_path / "junit.xml", Masker([]), 1 << 20)
    assert intake.path is None
    assert "not well-formed" in intake.note
    assert not (tmp_path / "junit.xml").exists()
