"""`shardrun run`, the real command end to end on fake engines: build, distribute, run,
report, exit code."""

from __future__ import annotations

import json
import threading
import time

from shardrun.model.image_ref import content_tag
from tests.host.cli.conftest import IMAGE, shardrun, write_project


def _report(run_dir) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def test_run_builds_once_runs_every_shard_and_exits_0(docker, tmp_path):
    local = docker.add("local", builds=True)
    project = write_project(tmp_path, ["a", "b", "c"])

    done = shardrun("run", "--plain", "--json", str(tmp_path / "out.json"))

    assert done.exit_code == 0, done.output
    assert len(local.called("build")) == 1
    assert sorted(local.started_shards()) == ["a", "b", "c"]  # the builder is the worker
    assert local.loads == [] and local.present == {}  # it holds what it built
    report = _report(project.latest())
    assert report["exit_code"] == 0 and report["image_id"] == IMAGE.id
    assert {s["name"]: s["status"] for s in report["shards"]} == dict.fromkeys("abc", "PASS")
    assert json.loads((tmp_path / "out.json").read_text()) == report  # --json's copy
    assert f"report: {tmp_path / 'out.json'}" in done.stdout  # the summary's end


def test_a_failing_shard_exits_1_and_the_others_still_run(docker, tmp_path):
    docker.add("local", builds=True).script("b", exit_code=3, output=b"1 failed\n")
    project = write_project(tmp_path, ["a", "b"])

    done = shardrun("run", "--plain")

    assert done.exit_code == 1, done.output
    report = _report(project.latest())
    assert {s["name"]: s["status"] for s in report["shards"]} == {"a": "PASS", "b": "FAIL"}
    assert (project.latest() / "junit.xml").exists()


def test_workers_without_the_image_are_sent_it_from_the_builder(docker, tmp_path):
    builder = docker.add("local", builds=True)
    w1, w2 = docker.add("w1"), docker.add("w2")
    write_project(tmp_path, ["a", "b", "c", "d"], workers=["w1", "w2"])

    done = shardrun("run", "--plain")

    assert done.exit_code == 0, done.output
    assert builder.history == []  # not a worker: it only built and saved
    for fake in (w1, w2):
        assert fake.has_image(IMAGE.id) and content_tag(IMAGE.id) in fake.tags
    assert sorted(w1.started_shards() + w2.started_shards()) == ["a", "b", "c", "d"]


def test_a_worker_lost_mid_run_is_said_and_its_shard_passes_elsewhere(docker, tmp_path):
    docker.add("local", builds=True)
    dying = docker.add("w1").script(seconds=None)  # runs until its daemon dies under it
    good = docker.add("w2").script(seconds=0.2)
    project = write_project(tmp_path, ["a", "b", "c"], workers=["w1", "w2"])

    def kill_the_daemon() -> None:
        end = time.monotonic() + 10
        while not dying.running() and time.monotonic() < end:
            time.sleep(0.005)
        dying.stop_answering()

    killer = threading.Thread(target=kill_the_daemon)
    killer.start()
    done = shardrun("run", "--plain")
    killer.join()

    assert done.exit_code == 0, done.output
    assert sorted(good.started_shards()) == ["a", "b", "c"]
    report = _report(project.latest())
    assert {s["name"]: s["worker"] for s in report["shards"]} == dict.fromkeys("abc", "w2")
    assert "1 of 2 workers lost: w1" in done.stdout


def test_losing_a_required_worker_exits_4(docker, tmp_path):
    docker.add("local", builds=True)
    write_project(tmp_path, ["a"], workers=["w1", "w2"])
    docker.add("w1")  # w2 is not there: unreachable

    done = shardrun("run", "--plain", "--require-all-workers")

    assert done.exit_code == 4, done.output
    assert "w2" in done.output


def test_no_worker_reachable_exits_4_in_one_line(docker, tmp_path):
    docker.add("local", builds=True)
    write_project(tmp_path, ["a"], workers=["w1"])

    done = shardrun("run", "--plain")

    assert done.exit_code == 4
    assert "no worker is reachable" in done.stderr and "Traceback" not in done.output


def test_run_failed_after_a_green_run_has_nothing_to_run(docker, tmp_path):
    docker.add("local", builds=True)
    write_project(tmp_path, ["a"])
    assert shardrun("run", "--plain").exit_code == 0

    done = shardrun("run", "--plain", "--failed")

    assert done.exit_code == 0
    assert "had no failed shards; nothing to run" in done.stdout


def test_an_image_on_the_build_engine_runs_without_a_build(docker, tmp_path):
    local = docker.add("local", has_image=True)
    project = write_project(tmp_path, ["a"])

    done = shardrun("run", "--plain", "--image", IMAGE.id)

    assert done.exit_code == 0, done.output
    assert local.called("build") == [] and local.started_shards() == ["a"]
    assert _report(project.latest())["image_id"] == IMAGE.id
