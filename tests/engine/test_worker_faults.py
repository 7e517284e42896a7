"""Faults of workers as they happen in the field: a daemon stopped with SIGTERM behind a
socket proxy, two runs sharing workers, a full disk on the runner, a load nobody needs,
and a long run of small shards. Real daemons in network namespaces (scripts/worker-hosts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import docker
import pytest

from tests.engine.conftest import (
    LABEL_PROJECT,
    shards_toml,
    two_runs_at_once,
    wait_for_running,
)
from tests.engine.proxy import SocketProxy
from tests.tmpfs import tmpfs

SHORT_NAPS = """
[defaults]
network = "none"
[[shard]]
name = "nap-{index}"
count = 30
command = ["sh", "-c", "sleep 0.5; echo done"]
"""


def _leftovers(url: str, project) -> list:
    try:
        client = docker.DockerClient(base_url=url)
        found = client.containers.list(
            all=True, filters={"label": f"{LABEL_PROJECT}={project.name}"}
        )
    except docker.errors.DockerException:
        return []  # a daemon a test stopped
    for container in found:
        container.remove(force=True)
    return found


@pytest.fixture
def proxied_w1(w1_restored, tmp_path):
    proxy = SocketProxy(tmp_path / "w1-proxy.sock", w1_restored["SHARDRUN_TEST_W1_UNIX"][7:])
    yield w1_restored, proxy
    proxy.close()


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_daemon_stopped_with_sigterm_behind_a_proxy_moves_its_shards(
    project, docker_client, proxied_w1, attempt
):
    hosts, proxy = proxied_w1
    project.write("shards.toml", shards_toml(project, SHORT_NAPS))
    w1 = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W1_UNIX"])
    proc = project.popen("run", "--plain", "--worker", "default*2", "--worker", f"{proxy.url}*3")
    try:
        wait_for_running(w1, project)
        time.sleep(0.3 * attempt)  # a different moment of the container lifecycle each time
        os.kill(int(hosts["SHARDRUN_TEST_W1_PID"]), signal.SIGTERM)  # drains, then goes
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()

    # An infrastructure fault is not a test failure: every shard passed, on local.
    report = project.report()
    bad = [(s["name"], s["worker"], s["detail"]) for s in report["shards"] if s["status"] != "PASS"]
    assert proc.returncode == 0, "\n".join(map(str, bad)) + out
    assert report["lost_workers"] == ["w1-proxy.sock"], out
    assert {s["status"] for s in report["shards"]} == {"PASS"}, out
    assert "requeue  nap-" in out
    assert "LOST     w1-proxy.sock" in out


def test_two_runs_sharing_two_workers_both_get_right_results(project, hosts):
    workers = ["--worker", "default*2", "--worker", f"{hosts['SHARDRUN_TEST_W1_TCP']}*2"]
    two_runs_at_once(project, *workers, pairs=3, ok=6)
    assert _leftovers(hosts["SHARDRUN_TEST_W1_UNIX"], project) == []
    # One tarball, saved once, shared by both runs.
    assert len(list((project.root / ".shardrun" / "cache").glob("*.tar"))) <= 2


BIG_IMAGE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY payload.txt /payload.txt
RUN head -c 150000000 /dev/urandom > /big
"""


def test_a_full_disk_on_the_runner_is_one_line_and_exit_4_not_a_lost_worker(project, hosts):
    project.write("Dockerfile.test", BIG_IMAGE)
    project.write("payload.txt", f"{project.name}\n")
    project.write(
        "shards.toml", shards_toml(project, SHORT_NAPS.replace("count = 30", "count = 2"))
    )
    with tmpfs(project.root / ".shardrun" / "cache", "50m") as cache:
        for workers in (
            ["--worker", "default", "--worker", hosts["SHARDRUN_TEST_W1_TCP"]],
            ["--worker", hosts["SHARDRUN_TEST_W1_TCP"]],
        ):
            result = project.shardrun("run", "--plain", *workers)
            assert result.returncode == 4, result.stdout + result.stderr
            [line] = result.stderr.splitlines()
            assert line.startswith("shardrun: error: ") and str(cache) in line, line
            assert "MB" in line and "LOST" not in result.stdout
            assert list(cache.iterdir()) == []
    assert _leftovers(hosts["SHARDRUN_TEST_W1_UNIX"], project) == []


def test_a_run_does_not_wait_for_a_load_that_no_shard_needs(project, hosts):
    project.write("Dockerfile.test", BIG_IMAGE)
    project.write("payload.txt", f"{project.name}\n")
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[[shard]]
name = "quick"
network = "none"
command = ["true"]
""",
        ),
    )
    result = project.shardrun(
        "run", "--plain", "--worker", "default", "--worker", hosts["SHARDRUN_TEST_W1_TCP"]
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = project.report()
    assert [(s["name"], s["worker"]) for s in report["shards"]] == [("quick", "local")]
    # The run ended while w1 was still loading: its load never finished.
    w1 = next(w for w in report["workers"] if w["name"] != "local")
    assert w1["load"] == "" and not w1["lost"], w1
    assert _leftovers(hosts["SHARDRUN_TEST_W1_UNIX"], project) == []


def test_two_hundred_small_shards_on_eight_slots_in_little_memory(project, hosts):
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[defaults]
network = "none"
[[shard]]
name = "tiny-{index}"
count = 200
command = ["true"]
""",
        ),
    )
    # The peak RSS of the runner alone: a parent whose only waited-for child it is.
    measure = (
        "import resource, subprocess, sys; "
        "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    proc = subprocess.run(  # noqa: PLW1510 - the exit code is what we test
        [
            sys.executable,
            "-c",
            measure,
            sys.executable,
            "-m",
            "shardrun",
            "run",
            "--plain",
            "--worker",
            "default*4",
            "--worker",
            f"{hosts['SHARDRUN_TEST_W1_TCP']}*4",
        ],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    code, peak_kb = (int(x) for x in proc.stdout.split())
    assert code == 0, proc.stderr
    report = project.report()
    assert len(report["shards"]) == 200
    assert {s["status"] for s in report["shards"]} == {"PASS"}
    assert report["lost_workers"] == []
    assert {s["worker"] for s in report["shards"]} == {"local", "198.18.0.2:2375"}
    assert peak_kb < 100 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    assert _leftovers(hosts["SHARDRUN_TEST_W1_UNIX"], project) == []
    print(f"200 shards on 8 slots: runner peak RSS {peak_kb / 1024:.0f} MB")  # pytest -s


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_distribution_leaves_nothing_and_records_the_run(
    project, hosts, signum
):
    project.write("Dockerfile.test", BIG_IMAGE)
    project.write("payload.txt", f"{project.name}\n")
    project.write(
        "shards.toml", shards_toml(project, SHORT_NAPS.replace("count = 30", "count = 2"))
    )
    proc = project.popen("run", "--plain", "--worker", hosts["SHARDRUN_TEST_W1_TCP"])
    cache = project.root / ".shardrun" / "cache"
    deadline = time.monotonic() + 120
    while not list(cache.glob(".*.tmp")):  # the tarball for w1 is being written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no tarball was ever written"
        time.sleep(0.02)
    time.sleep(0.2)

    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, out + err
    assert "loaded   " not in out  # it was stopped mid-load
    report = project.report()
    assert report["interrupted"] is True
    assert {s["status"] for s in report["shards"]} == {"CANCELLED"}
    assert [p.name for p in cache.iterdir() if p.name.endswith(".tmp")] == []
    assert _leftovers(hosts["SHARDRUN_TEST_W1_UNIX"], project) == []
