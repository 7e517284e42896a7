"""`shardrun workers`, the real command on fake engines: a table, exit 4 when none
answers."""

from __future__ import annotations

from tests.host.cli.conftest import shardrun, write_project


def test_workers_lists_each_worker_reachable_or_not(docker, tmp_path):
    w1 = docker.add("w1")
    write_project(tmp_path, ["a"], workers=["w1", "w2"])  # no fake at w2: unreachable

    done = shardrun("workers")

    assert done.exit_code == 0, done.output
    assert "w1" in done.stdout and "w2" in done.stdout
    assert "27.0.0-fake" in done.stdout  # w1's engine version
    assert w1.called("facts") and w1.called("containers")  # asked, and orphans looked for


def test_workers_exits_4_when_no_worker_answers(docker, tmp_path):
    write_project(tmp_path, ["a"], workers=["w1"])

    done = shardrun("workers")

    assert done.exit_code == 4
    assert "w1" in done.stdout
