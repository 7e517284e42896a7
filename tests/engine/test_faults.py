"""Faults as they happen in the field, on the local engine: interrupts at every stage, a
runner killed with SIGKILL, orphans, secrets. Real processes, real signals, real engine."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shardrun.model import owner
from tests.engine.conftest import (
    LABEL_PROJECT,
    shards_toml,
    two_runs_at_once,
    wait_for_running,
)

SLEEPY_BUILD = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY payload.txt /payload.txt
RUN sleep 20
"""

ONE_SHARD = """
[defaults]
network = "none"
[[shard]]
name = "one"
command = ["true"]
"""


def _containers(client, project):
    return client.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={project.name}"})


def _read_until(proc: subprocess.Popen, text: str, within: float = 60) -> list[str]:
    """Lines of the process's stdout up to the first that holds `text`."""
    deadline = time.monotonic() + within
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    pytest.fail(f"never saw {text!r}; got:\n{''.join(lines)}{proc.stderr.read()}")


def _wait_gone(client, project, within: float) -> list:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = _containers(client, project)
        if not left:
            return []
        time.sleep(0.2)
    return _containers(client, project)


@pytest.mark.parametrize("command", ["run", "build"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_the_build_exits_130_and_marks_the_run_interrupted(
    project, docker_client, command, signum
):
    project.write("Dockerfile.test", SLEEPY_BUILD)
    project.write("payload.txt", f"{project.name} {command} {signum}\n")  # no cached step
    project.write("shards.toml", shards_toml(project, ONE_SHARD))
    proc = project.popen(command, "--plain")
    _read_until(proc, "RUN sleep 20")
    time.sleep(0.5)

    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, out + err
    assert "internal error" not in err and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "shardrun: interrupted"
    assert _containers(docker_client, project) == []
    if command == "run":
        report = project.report()
        assert report["interrupted"] is True and report["exit_code"] == 130
        assert [(s["name"], s["status"]) for s in report["shards"]] == [("one", "CANCELLED")]
        assert "interrupted (exit 130)" in out or "failed (exit 130)" in out


BIG_BUILD = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY payload.txt /payload.txt
RUN head -c 400000000 /dev/urandom > /big
"""


def test_an_interrupted_or_killed_save_leaves_no_partial_tarball(project):
    project.write("Dockerfile.test", BIG_BUILD)
    project.write("payload.txt", f"{project.name}\n")
    project.write("shards.toml", shards_toml(project, ONE_SHARD))
    cache = project.root / ".shardrun" / "cache"

    def save_then(signum: int) -> subprocess.Popen:
        proc = project.popen("build", "--plain")
        deadline = time.monotonic() + 120
        while not list(cache.glob(".*.tmp")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the save never started"
            time.sleep(0.02)
        proc.send_signal(signum)
        proc.communicate(timeout=60)
        return proc

    interrupted = save_then(signal.SIGINT)
    assert interrupted.returncode == 130
    assert list(cache.glob(".*.tmp")) == []

    killed = save_then(signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert list(cache.glob(".*.tmp")), "a runner killed mid-save leaves its temp file..."
    done = project.shardrun("build", "--plain")
    assert done.returncode == 0, done.stderr
    assert list(cache.glob("*.tmp")) == [], "...which the next command removes"
    assert len(list(cache.glob("*.tar"))) == 1


SLEEPS_FOR_EVER = """
[defaults]
network = "none"
[[shard]]
name = "forever"
command = ["sleep", "100000"]
timeout = "5s"
"""


def test_a_runner_killed_with_sigkill_leaves_no_container_behind(project, docker_client):
    project.write("shards.toml", shards_toml(project, SLEEPS_FOR_EVER))
    proc = project.popen("run", "--plain")
    [container] = wait_for_running(docker_client, project)
    assert container.labels[owner.LABEL_PID] == str(proc.pid)
    assert float(container.labels[owner.LABEL_DEADLINE]) > time.time()

    proc.kill()
    proc.wait()

    # Its watchdog removes the run's containers at once, not after the 5 s timeout.
    assert _wait_gone(docker_client, project, within=5) == []


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_every_command_reaps_orphans_and_leaves_live_runs_alone(
    project, docker_client, busybox_image
):
    me = owner.me()
    base = {LABEL_PROJECT: project.name, owner.LABEL_SHARD: "s"}
    runner_gone = {
        **base,
        owner.LABEL_RUN: "dead",
        **me.labels(),
        owner.LABEL_PID: str(_dead_pid()),
    }
    past_deadline = {
        **base,
        owner.LABEL_RUN: "elsewhere",
        owner.LABEL_HOST: "another-host",
        owner.LABEL_BOOT: "x",
        owner.LABEL_PID: "1",
        owner.LABEL_STARTED: "1",
        owner.LABEL_DEADLINE: f"{time.time() - 1:.0f}",
    }
    live_elsewhere = {
        **past_deadline,
        owner.LABEL_RUN: "live",
        owner.LABEL_DEADLINE: f"{time.time() + 3600:.0f}",
    }
    live_here = {**base, owner.LABEL_RUN: "mine", **me.labels()}
    made = {}
    for name, labels in (
        ("gone", runner_gone),
        ("late", past_deadline),
        ("elsewhere", live_elsewhere),
        ("here", live_here),
    ):
        made[name] = docker_client.containers.run(
            busybox_image,
            ["sleep", "600"],
            labels=labels,
            detach=True,
            network_mode="none",
        )
    made["created"] = docker_client.containers.create(  # a live run's, between create and start
        busybox_image,
        ["true"],
        labels={**live_here, owner.LABEL_RUN: "mine-created"},
    )
    project.write("shards.toml", shards_toml(project, ONE_SHARD))

    result = project.shardrun("build", "--plain")

    assert result.returncode == 0, result.stderr
    left = {c.labels[owner.LABEL_RUN] for c in _containers(docker_client, project)}
    assert left == {"live", "mine", "mine-created"}
    for container in made.values():
        if container.labels[owner.LABEL_RUN] in left:
            container.remove(force=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_repro_removes_its_container(project, docker_client, signum):
    project.write("shards.toml", shards_toml(project, SLEEPS_FOR_EVER))
    proc = project.popen("repro", "forever")
    wait_for_running(docker_client, project)

    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, out + err
    assert _containers(docker_client, project) == []


SECRET = "s3cr3t-Value-91"
SECRET_SHARDS = f"""
[defaults]
network = "none"
secret-env = ["SHARD_TOKEN"]
[[shard]]
name = "leaky"
# Whole, then split across two writes a moment apart (two reads of the log stream).
command = ["sh", "-c", "echo token=$SHARD_TOKEN; printf '{SECRET[:6]}'; sleep 0.5; printf '{SECRET[6:]} end\\n'; exit 1"]
"""


def test_a_secret_reaches_the_container_and_is_never_written(project, docker_client, tmp_path):
    project.write("shards.toml", shards_toml(project, SECRET_SHARDS))
    unset = project.shardrun("run", "--plain")
    assert unset.returncode == 2
    assert "SHARD_TOKEN is not set" in unset.stderr and "Traceback" not in unset.stderr

    step_summary = tmp_path / "summary.md"
    env = {"SHARD_TOKEN": SECRET, "GITHUB_STEP_SUMMARY": str(step_summary)}
    result = project.shardrun("run", "--plain", env=env)

    assert result.returncode == 1, result.stdout + result.stderr
    run_dir = project.root / ".shardrun" / "runs" / project.report()["run_id"]
    log = (run_dir / "leaky.log").read_text()
    assert log == "token=***\n*** end\n"
    written = [result.stdout, result.stderr, step_summary.read_text()]
    written += [p.read_text() for p in run_dir.iterdir() if p.is_file()]
    assert all(SECRET not in text for text in written)
    assert "***" in (run_dir / "junit.xml").read_text()
    # Private state: logs show what tests saw.
    state = project.root / ".shardrun"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700


def test_repro_passes_a_secret_through_the_environment_not_argv(project, docker_client):
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[[shard]]
name = "leaky"
network = "none"
secret-env = ["SHARD_TOKEN"]
command = ["sleep", "30"]
""",
        ),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "shardrun", "repro", "leaky"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SHARD_TOKEN": SECRET},
    )
    try:
        [container] = wait_for_running(docker_client, project)
        argvs = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argvs.append(cmdline.read_bytes())
            except OSError:
                continue
        assert not [a for a in argvs if SECRET.encode() in a]
        assert f"SHARD_TOKEN={SECRET}" in container.attrs["Config"]["Env"]
        assert container.attrs["HostConfig"]["Privileged"] is False
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert "--env SHARD_TOKEN " in err and SECRET not in out + err


def test_two_runs_in_one_project_at_once_both_get_right_results(project, docker_client):
    two_runs_at_once(project, "--jobs", "3", pairs=2, ok=5)
    assert _containers(docker_client, project) == []


def test_config_errors_that_used_to_crash_are_one_line(project):
    project.write("shards.toml", "x = " + "[" * 2000 + "]" * 2000 + "\n")
    deep = project.shardrun("list")
    project.write("shards.toml", shards_toml(project, f'[[shard]]\nname = "{"n" * 300}"\n'))
    long_name = project.shardrun("run", "--plain")
    for result in (deep, long_name):
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("shardrun: error: ")
        assert "shards.toml" in result.stderr
    assert not (project.root / ".shardrun" / "runs").exists() or not any(
        (project.root / ".shardrun" / "runs").iterdir()
    )


def test_report_json_is_written_for_an_interrupted_run(project, docker_client):
    project.write("shards.toml", shards_toml(project, SLEEPS_FOR_EVER))
    proc = project.popen("run", "--plain")
    wait_for_running(docker_client, project)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    report = json.loads(
        (project.root / ".shardrun" / "runs" / "latest" / "report.json").read_text()
    )
    assert report["interrupted"] is True
    assert [s["status"] for s in report["shards"]] == ["CANCELLED"]
    assert _containers(docker_client, project) == []
