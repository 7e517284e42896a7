"""`shardrun repro` reruns the image that ran, not a rebuild: checked on the container the
engine runs (inspect), and through the printed `docker run` line run by `sh`."""

from __future__ import annotations

import hashlib
import os
import pty
import secrets
import select
import subprocess
import sys

import docker

from tests.engine.conftest import LABEL_PROJECT, shards_toml, wait_for_running

SHARD = """
[defaults]
network = "none"
env = { WHO = "shard-{index}" }
volumes = ["shardrun-test-repro-cache:/cache"]
[[shard]]
name = "t-{index}"
count = 2
command = ["sh", "-c", "cat /payload.txt; echo $WHO; sleep 2; exit 7"]
"""


def test_repro_runs_the_image_that_ran_with_the_same_command_env_and_mounts(project, docker_client):
    project.write("shards.toml", shards_toml(project, SHARD))
    ran = project.shardrun("run", "--plain")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    report = project.report()
    [recorded] = [s for s in report["shards"] if s["name"] == "t-2"]
    project.write("payload.txt", "changed since\n")  # the next build would differ

    proc = project.popen("repro", "t-2")
    try:
        [container] = wait_for_running(docker_client, project)
        attrs = docker_client.api.inspect_container(container.id)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == 7, out + err  # the shard's own exit code
    assert out == "payload\nshard-2\n"  # the old image's file, not the changed one
    assert attrs["Image"] == report["image_id"] == recorded["image"]
    assert attrs["Config"]["Cmd"] == recorded["options"]["command"]
    assert "WHO=shard-2" in attrs["Config"]["Env"]
    assert [(m["Name"], m["Destination"]) for m in attrs["Mounts"]] == [
        ("shardrun-test-repro-cache", "/cache")
    ]
    assert attrs["HostConfig"]["NetworkMode"] == "none"

    line = project.shardrun("repro", "t-2", "--print")
    assert line.returncode == 0 and line.stdout.startswith("docker --host ")
    through_sh = subprocess.run(
        ["sh", "-c", line.stdout], capture_output=True, text=True, timeout=60, check=False
    )
    assert (through_sh.returncode, through_sh.stdout) == (7, "payload\nshard-2\n")

    fresh = project.shardrun("repro", "t-2", "--fresh")
    assert (fresh.returncode, fresh.stdout) == (7, "changed since\nshard-2\n")
    label = {"label": f"{LABEL_PROJECT}={project.name}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    docker_client.volumes.get("shardrun-test-repro-cache").remove(force=True)


def test_repro_builds_afresh_when_the_image_that_ran_is_gone(project, docker_client):
    project.write("shards.toml", shards_toml(project, SHARD.replace("sleep 2; ", "")))
    assert project.shardrun("run", "--plain").returncode == 1
    image_id = project.report()["image_id"]
    project.write("payload.txt", "rebuilt\n")
    project.shardrun("build", "--plain")  # the new image: the old one is no longer tagged
    docker_client.images.remove(image_id, force=True)

    again = project.shardrun("repro", "t-1")

    assert again.returncode == 7, again.stdout + again.stderr
    assert (
        f"the image of run {project.report()['run_id']} ({image_id[:19]}) is gone" in again.stderr
    )
    assert again.stdout == "rebuilt\nshard-1\n"
    docker_client.volumes.get("shardrun-test-repro-cache").remove(force=True)


def test_repro_on_the_worker_where_the_shard_ran(project, hosts):
    w1 = hosts["SHARDRUN_TEST_W1_TCP"]
    project.write("shards.toml", shards_toml(project, SHARD.replace("sleep 2; ", "")))
    assert project.shardrun("run", "--plain", "--worker", w1).returncode == 1
    [recorded] = [s for s in project.report()["shards"] if s["name"] == "t-1"]

    again = project.shardrun("repro", "t-1", "--worker", recorded["worker"])

    assert again.returncode == 7, again.stdout + again.stderr
    assert f"on {recorded['worker']})" in again.stderr
    assert f"--host {w1} run" in again.stderr
    client = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W1_UNIX"])
    client.volumes.get("shardrun-test-repro-cache").remove(force=True)


# The shard checks the value it got by its digest, so the value is in no command line.
SECRET = """
[[shard]]
name = "secret"
network = "none"
secret-env = ["TOKEN"]
command = ["sh", "-c", "echo out=$TOKEN; echo err=$TOKEN >&2; \
test $(printf %s \\"$TOKEN\\" | md5sum | cut -c1-32) = {digest} && exit 42; exit 43"]
[[shard]]
name = "spelled"
secret-env = ["TOKEN"]
env = { COPY = "{token}" }
command = ["true"]
"""


def _in_a_terminal(project, *args: str, env: dict) -> tuple[int, bytes]:
    """`shardrun ARGS` with a pseudo-terminal for stdin, stdout and stderr, as a developer
    runs it: its exit code and everything it showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shardrun", *args],
        cwd=project.root,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **env},
    )
    os.close(follower)
    shown = b""
    try:
        while select.select([leader], [], [], 60)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every holder of the terminal has exited
                break
            if not chunk:
                break
            shown += chunk
        return proc.wait(timeout=60), shown
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()


def test_repro_never_shows_a_secret_yet_the_container_gets_it(project):
    token = f"tok-{secrets.token_hex(16)}"
    digest = hashlib.md5(token.encode()).hexdigest()  # a checksum, not a safeguard
    body = SECRET.replace("{digest}", digest).replace("{token}", token)
    project.write("shards.toml", shards_toml(project, body))
    env = {"TOKEN": token}

    ran = project.shardrun("repro", "secret", env=env)
    assert ran.returncode == 42, ran.stdout + ran.stderr  # the container saw the value
    assert token not in ran.stdout + ran.stderr
    assert ran.stdout == "out=***\n" and "err=***\n" in ran.stderr
    command = next(ln for ln in ran.stderr.splitlines() if ln.startswith("$ docker "))
    assert " --env TOKEN " in command  # named, so the docker CLI takes it from the environment

    printed = project.shardrun("repro", "secret", "--print", env=env)
    assert printed.returncode == 0 and " --env TOKEN " in printed.stdout
    assert token not in printed.stdout + printed.stderr
    again = subprocess.run(
        ["sh", "-c", printed.stdout],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )
    assert again.returncode == 42, again.stdout + again.stderr  # the line still works
    spelled = project.shardrun("repro", "spelled", "--print", env=env)
    assert " --env COPY=*** " in spelled.stdout  # a value the config spells out is masked
    assert token not in spelled.stdout + spelled.stderr

    code, shown = _in_a_terminal(project, "repro", "secret", env=env)
    assert code == 42, shown
    assert b" --interactive --tty " in shown  # the CLI was given a terminal, ours relayed
    assert token.encode() not in shown and b"out=***" in shown and b"err=***" in shown
