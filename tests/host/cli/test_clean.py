"""`shardrun clean`, the real command on fake engines: old runs go, each worker answers."""

from __future__ import annotations

import os
import time

from tests.host.cli.conftest import shardrun, write_project


def test_clean_removes_old_runs_and_asks_every_worker(docker, tmp_path):
    w1 = docker.add("w1")
    write_project(tmp_path, ["a"], workers=["w1", "w2"])  # no fake at w2: unreachable
    old = tmp_path / ".shardrun" / "runs" / "20200101-000000-abcdef"
    old.mkdir(parents=True)
    (old / "a.log").write_text("old\n")
    month_ago = time.time() - 30 * 86400
    for path in (old / "a.log", old):
        os.utime(path, (month_ago, month_ago))

    done = shardrun("clean", "--older-than", "7d")

    assert done.exit_code == 0, done.output
    assert not old.exists()
    assert "removed 1 run and 0 cache files" in done.stdout
    assert "w1: removed 0 kept containers, 0 unused image tags" in done.stdout
    assert "w2: cannot reach" in done.stdout
    assert w1.called("containers")  # kept containers looked for on the fake
