"""Many workers: real dockerd daemons in network namespaces, reached over tcp:// and ssh://.

`scripts/worker-hosts up` starts them (root, iproute2, openssh-server, docker.io); the
fixture runs it, so these tests need no manual step beyond what .ci/run installs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import docker
import pytest

from shardrun.distribute.artifact import layers
from shardrun.model.image_ref import held_chain_ids
from tests.engine.conftest import LABEL_PROJECT, hosts_script, shards_toml, wait_for_running
from tests.engine.test_cache import with_manifest

UNREACHABLE = "tcp://198.18.0.2:2999"  # w1's address, a port nothing listens on


def _workers(hosts, local_slots=1, w1_slots=1, w2_slots=1) -> list[str]:
    return [
        "--worker",
        f"default*{local_slots}",
        "--worker",
        f"{hosts['SHARDRUN_TEST_W1_TCP']}*{w1_slots}",
        "--worker",
        f"{hosts['SHARDRUN_TEST_W2_SSH']}*{w2_slots}",
    ]


def _by_worker(report: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for shard in report["shards"]:
        out.setdefault(shard["worker"], []).append(shard["name"])
    return out


TOP_LAYER_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN echo a middle layer > /middle.txt
COPY payload.txt /payload.txt
"""

NINE_NAPS = """
[defaults]
network = "none"
[[shard]]
name = "nap-{index}"
count = 9
command = ["sh", "-c", "cat /payload.txt; sleep 1"]
"""


@pytest.fixture
def remote_project(project, hosts):
    project.write("Dockerfile.test", TOP_LAYER_DOCKERFILE)
    project.write("shards.toml", shards_toml(project, NINE_NAPS))
    yield project
    for url in (hosts["SHARDRUN_TEST_W1_UNIX"], hosts["SHARDRUN_TEST_W2_UNIX"]):
        client = docker.DockerClient(base_url=url)
        try:
            leftover = client.containers.list(
                all=True, filters={"label": f"{LABEL_PROJECT}={project.name}"}
            )
            for container in leftover:
                container.remove(force=True)
            assert not leftover, f"containers left on {url}"
        except docker.errors.DockerException:
            pass  # a daemon a test killed


def test_three_workers_over_unix_tcp_and_ssh_all_run_shards(remote_project, hosts):
    result = remote_project.shardrun("run", "--plain", *_workers(hosts))

    assert result.returncode == 0, result.stdout + result.stderr
    report = remote_project.report()
    names = {w["name"] for w in report["workers"]}
    assert names == {"local", "198.18.0.2:2375", "root@198.18.0.6"}
    assert set(_by_worker(report)) == names, _by_worker(report)
    assert all(s["status"] == "PASS" for s in report["shards"])
    slots = {(s["worker"], s["slot"]) for s in report["shards"]}
    assert all(slot == 1 for _, slot in slots)
    loads = {w["name"]: w["load"] for w in report["workers"]}
    assert loads["local"] == "none"  # the build daemon never loads what it built
    assert loads["198.18.0.2:2375"] in ("thin", "full")


def test_unchanged_image_sends_nothing_and_top_layer_change_sends_a_thin_tarball(
    remote_project, hosts
):
    first = remote_project.shardrun("run", "--plain", *_workers(hosts))
    assert first.returncode == 0, first.stdout + first.stderr

    again = remote_project.shardrun("run", "--plain", *_workers(hosts))
    assert again.returncode == 0
    for worker in remote_project.report()["workers"]:
        assert (worker["load"], worker["sent"]) == ("none", 0), worker

    remote_project.write("payload.txt", "changed payload\n")
    changed = remote_project.shardrun("run", "--plain", *_workers(hosts))

    assert changed.returncode == 0, changed.stdout + changed.stderr
    report = remote_project.report()
    for worker in report["workers"]:
        if worker["name"] == "local":
            continue
        assert worker["load"] == "thin", worker
        assert worker["sent"] < 0.10 * worker["full_size"], worker
    # every worker ran shards, and every shard saw the new top layer
    assert len(_by_worker(report)) == 3
    for shard in report["shards"]:
        assert Path(shard["log"]).read_text() == "changed payload\n", shard["name"]


def test_a_worker_killed_mid_run_is_lost_and_its_shards_finish_elsewhere(
    remote_project, w1_restored
):
    hosts = w1_restored
    remote_project.write(
        "shards.toml",
        shards_toml(
            remote_project,
            """
[defaults]
network = "none"
[[shard]]
name = "work-{index}"
count = 6
command = ["sh", "-c", "sleep 3; echo done"]
""",
        ),
    )
    proc = remote_project.popen(
        "run",
        "--plain",
        "--worker",
        "default*2",
        "--worker",
        f"{hosts['SHARDRUN_TEST_W1_TCP']}*2",
    )
    try:
        wait_for_running(
            docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W1_UNIX"]), remote_project
        )
        os.kill(int(hosts["SHARDRUN_TEST_W1_PID"]), 9)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == 0, out + err  # only test results count, and they all passed
    report = remote_project.report()
    assert report["lost_workers"] == ["198.18.0.2:2375"]
    assert {s["status"] for s in report["shards"]} == {"PASS"}
    assert {s["worker"] for s in report["shards"]} == {"local"}
    assert any(s["attempt"] == 1 for s in report["shards"])
    assert "LOST     198.18.0.2:2375" in out
    assert "requeue  work-" in out
    assert "worker 198.18.0.2:2375: LOST" in out

    # The dead daemon kept its containers; the next run on that worker sweeps them.
    hosts_script("restart w1")
    w1 = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W1_UNIX"])
    label = {"label": f"{LABEL_PROJECT}={remote_project.name}"}
    assert w1.containers.list(all=True, filters=label), "expected the killed run's leftovers"
    again = remote_project.shardrun(
        "run", "--plain", "--shard", "work-1", "--worker", hosts["SHARDRUN_TEST_W1_TCP"]
    )
    assert again.returncode == 0, again.stdout + again.stderr
    leftover = w1.containers.list(all=True, filters=label)
    assert leftover == [], [(c.status, c.labels) for c in leftover]


def test_an_unreachable_worker_is_reported_and_skipped(project):
    project.write("shards.toml", shards_toml(project, NINE_NAPS))
    result = project.shardrun(
        "run", "--plain", "--shard", "nap-1", "--worker", "default", "--worker", UNREACHABLE
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"cannot reach the Docker engine at {UNREACHABLE}: Connection refused" in result.stdout
    lost = {w["name"]: w["lost"] for w in project.report()["workers"]}
    assert lost["198.18.0.2:2999"].startswith("cannot reach")
    # Never silent: the verdict line names the lost worker and why.
    [verdict] = [line for line in result.stdout.splitlines() if "(exit 0)" in line]
    assert "1 of 2 workers lost: 198.18.0.2:2999: cannot reach" in verdict

    required = project.shardrun(
        "run",
        "--plain",
        "--shard",
        "nap-1",
        "--worker",
        "default",
        "--worker",
        UNREACHABLE,
        "--require-all-workers",
    )
    assert required.returncode == 4, required.stdout + required.stderr
    assert project.statuses() == {"nap-1": "PASS"}
    assert "198.18.0.2:2999 (required): cannot reach" in required.stdout


def test_no_reachable_worker_exits_4(project):
    project.write("shards.toml", shards_toml(project, NINE_NAPS))
    result = project.shardrun("run", "--plain", "--worker", UNREACHABLE)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "no worker is reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_host_bind_mount_needs_the_remote_worker_to_declare_it(project, hosts, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "fixture.txt").write_text("from the host\n")
    body = f"""
[defaults]
network = "none"
[[shard]]
name = "reads-data"
command = "cat /data/fixture.txt"
volumes = ["{data}:/data:ro"]
"""
    project.write("shards.toml", shards_toml(project, body))
    tcp = hosts["SHARDRUN_TEST_W1_TCP"]

    refused = project.shardrun("run", "--plain", "--worker", tcp)

    assert refused.returncode == 2
    assert 'shard "reads-data" bind-mounts host path' in refused.stderr
    assert "worker 198.18.0.2:2375 is remote" in refused.stderr
    assert not (project.root / ".shardrun").exists()  # nothing built, nothing started

    # Declared: the worker's own path for /data (here the same folder, as the worker
    # namespace shares this machine's filesystem) replaces the shard's.
    project.write(
        "shards.toml",
        shards_toml(
            project,
            body
            + f"""
[[worker]]
host = "{tcp}"
volumes = ["{data}:/data:ro"]
""",
        ),
    )
    accepted = project.shardrun("run", "--plain")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    [shard] = project.report()["shards"]
    assert shard["worker"] == "198.18.0.2:2375"
    assert Path(shard["log"]).read_text() == "from the host\n"


def test_workers_command_lists_reachability_and_image(remote_project, hosts):
    assert remote_project.shardrun("run", "--plain", "--shard", "nap-1").returncode == 0
    result = remote_project.shardrun(
        "workers",
        "--worker",
        "default",
        "--worker",
        hosts["SHARDRUN_TEST_W2_SSH"] + "*3",
        "--worker",
        UNREACHABLE,
    )
    assert result.returncode == 0, result.stderr
    rows = {
        line.split("│")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    }
    assert "ok" in rows["local"] and "yes" in rows["local"]
    ssh = rows["root@198.18.0.6"]
    assert "ok" in ssh and "20.10" in ssh and "│ 3 " in ssh and "no" in ssh
    assert "unreachable" in rows["198.18.0.2:2999"]


def test_shardrun_json_timings_make_the_longest_start_first(project):
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[defaults]
network = "none"
command = "true"
[[shard]]
name = "short"
[[shard]]
name = "long"
[[shard]]
name = "medium"
[[shard]]
name = "new"
""",
        ),
    )
    state = project.root / ".shardrun"
    state.mkdir()
    (state / "timings.json").write_text(
        json.dumps({"durations": {"short": 1.0, "long": 50.0, "medium": 10.0}})
    )
    result = project.shardrun("run", "--plain", "--jobs", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    started = sorted(project.report()["shards"], key=lambda s: s["started"])
    assert [s["name"] for s in started] == ["new", "long", "medium", "short"]
    recorded = json.loads((state / "timings.json").read_text())["durations"]
    assert set(recorded) == {"short", "long", "medium", "new"}


def test_a_refused_thin_load_falls_back_to_full_and_is_remembered(project, hosts):
    tcp = hosts["SHARDRUN_TEST_W1_TCP"]
    project.write("shards.toml", shards_toml(project, NINE_NAPS))
    built = project.shardrun("build", "--plain")
    assert built.returncode == 0, built.stderr
    tarball = Path(project.root, built.stdout.strip().splitlines()[-1])
    image_id = built.stdout.strip().splitlines()[-2]
    # The thin tarball w1 would get, whole by every check of ours but refused by the engine
    # ("invalid manifest, layers length mismatch"), as the containerd image store refuses
    # one that omits layers.
    w1 = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W1_UNIX"])
    saved = layers.read_saved(tarball)
    held = held_chain_ids(i.attrs["RootFS"]["Layers"] for i in w1.images.list(all=True))
    skip = layers.held_prefix(saved.diff_ids, held)
    assert skip >= 1  # w1 holds the busybox base
    whole = project.root / "whole.tar"
    layers.write_thin(tarball, layers.omitted_files(saved, skip), whole)
    thin = tarball.with_name(f"{tarball.stem}.thin{skip}.tar")
    with_manifest(whole, thin, lambda m: m[0]["Layers"].append(m[0]["Layers"][-1]))
    assert layers.is_complete(thin, image_id, layers.omitted_files(saved, skip))
    refused = [thin]

    result = project.shardrun("run", "--plain", "--shard", "nap-1", "--worker", tcp)

    assert result.returncode == 0, result.stdout + result.stderr
    [worker] = project.report()["workers"]
    assert (worker["load"], worker["sent"]) == ("full", worker["full_size"])
    memory = json.loads((project.root / ".shardrun" / "workers.json").read_text())
    assert memory["thin_refused"] == [tcp]
    assert memory.get("codec_refused", {}) == {}  # gzip was not what it refused

    # Next change: straight to a full load, no thin attempt.
    project.write("payload.txt", "v2\n")
    again = project.shardrun("run", "--plain", "--shard", "nap-1", "--worker", tcp)
    assert again.returncode == 0
    [worker] = project.report()["workers"]
    assert worker["load"] == "full"
    thin = sorted((project.root / ".shardrun" / "cache").glob("*.thin*.tar"))
    assert thin == refused  # no thin tarball was made for the new image


def test_a_worker_cut_off_from_the_network_is_lost_by_the_heartbeat(remote_project, hosts):
    """A dead daemon resets its connections; a host cut off leaves waits hanging silently."""
    remote_project.write(
        "shards.toml",
        shards_toml(
            remote_project,
            """
[defaults]
network = "none"
[[shard]]
name = "long-{index}"
count = 4
command = ["sh", "-c", "sleep 6; echo done"]
""",
        ),
    )
    w1 = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W1_UNIX"])  # not over the veth
    label = {"label": f"{LABEL_PROJECT}={remote_project.name}"}
    proc = remote_project.popen(
        "run",
        "--plain",
        "--worker",
        "default*2",
        "--worker",
        f"{hosts['SHARDRUN_TEST_W1_TCP']}*2",
    )
    try:
        wait_for_running(w1, remote_project, 2)
        subprocess.run(["ip", "link", "set", "shardrun-w1", "down"], check=True)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the run did not end after the worker was cut off:\n{out}\n{err}")
    finally:
        subprocess.run(["ip", "link", "set", "shardrun-w1", "up"], check=True)
        if proc.poll() is None:
            proc.kill()
        for container in w1.containers.list(all=True, filters=label):
            container.remove(force=True)  # they ran on, unreachable; the next run would sweep

    assert proc.returncode == 0, out + err
    report = remote_project.report()
    assert report["lost_workers"] == ["198.18.0.2:2375"]
    assert "LOST     198.18.0.2:2375: no answer to 2 pings in a row" in out
    assert {s["status"] for s in report["shards"]} == {"PASS"}
    assert {s["worker"] for s in report["shards"]} == {"local"}


def test_every_line_of_output_lands_in_the_log_once(project, hosts):
    """Output written at once and later, on stdout and stderr, in 24 quick containers on
    three workers: each log holds exactly its shard's lines, none lost before the attach
    and none repeated (a replay of the engine's log file raced the live stream)."""
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[defaults]
network = "none"
[[shard]]
name = "quick-{index}"
count = 24
command = ["sh", "-c", "echo first {index}; echo err {index} >&2; sleep 0.3; echo last {index}"]
""",
        ),
    )
    result = project.shardrun("run", "--plain", *_workers(hosts, 2, 2, 2))

    assert result.returncode == 0, result.stdout + result.stderr
    for shard in project.report()["shards"]:
        index = shard["name"].split("-")[1]
        lines = Path(shard["log"]).read_text().splitlines()
        assert sorted(lines) == sorted([f"first {index}", f"err {index}", f"last {index}"]), lines
