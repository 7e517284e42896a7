"""`shardrun repro`: picking the shard and the `docker run` command line (pure)."""

from __future__ import annotations

import pytest

from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard, Volume
from shardrun.repro.docker_run import docker_run_argv, printable
from shardrun.repro.recorded import pick

LABELS = {"shardrun.project": "demo", "shardrun.shard": "unit-2"}


def test_pick_finds_the_exact_name_and_suggests_near_misses():
    shards = [Shard(name="unit-1"), Shard(name="unit-2"), Shard(name="lint")]
    assert pick(shards, "unit-2").name == "unit-2"
    with pytest.raises(ConfigError, match=r'repro "unit2": no such shard; did you mean unit-2'):
        pick(shards, "unit2")
    with pytest.raises(ConfigError, match="shardrun list shows the names"):
        pick(shards, "zzz")


def test_every_option_becomes_its_docker_run_flag():
    shard = Shard(
        name="unit-2",
        command=("pytest", "-k", "not slow"),
        env={"A": "1"},
        volumes=(Volume("/srv/data", "/data", read_only=True), Volume("cache", "/c")),
        workdir="/src",
        user="1000",
        shm_size=1 << 30,
        security_opt=("seccomp=unconfined",),
        network="none",
        cpus=1.5,
        memory=2 << 30,
    )
    argv = docker_run_argv(shard, "sha256:abc", LABELS, host="ssh://ci@box")
    assert argv == [
        "docker",
        "--host",
        "ssh://ci@box",
        "run",
        "--rm",
        "--label",
        "shardrun.project=demo",
        "--label",
        "shardrun.shard=unit-2",
        "--env",
        "A=1",
        "--volume",
        "/srv/data:/data:ro",
        "--volume",
        "cache:/c:rw",
        "--workdir",
        "/src",
        "--user",
        "1000",
        "--shm-size",
        str(1 << 30),
        "--network",
        "none",
        "--cpus",
        "1.5",
        "--memory",
        str(2 << 30),
        "--security-opt",
        "seccomp=unconfined",
        "sha256:abc",
        "pytest",
        "-k",
        "not slow",
    ]
    assert printable(argv).endswith("sha256:abc pytest -k 'not slow'")


def test_entrypoint_arguments_lead_the_command():
    shard = Shard(name="x", entrypoint=("python", "-m"), command=("pytest", "-q"))
    argv = docker_run_argv(shard, "img", {})
    assert argv[-6:] == ["--entrypoint", "python", "img", "-m", "pytest", "-q"]


def test_shell_replaces_the_command_and_a_terminal_is_asked_for():
    shard = Shard(name="x", command=("pytest",), entrypoint=("tini", "--"))
    argv = docker_run_argv(shard, "img", {}, interactive=True, shell=True)
    assert argv[3:5] == ["--interactive", "--tty"]
    assert argv[-3:] == ["--entrypoint", "sh", "img"]


def test_the_image_cmd_is_kept_when_the_shard_has_no_command():
    assert docker_run_argv(Shard(name="x"), "img", {})[-1] == "img"
