"""shardrun.engine.docker_engine.container_options: a Shard's options in docker-py's create() terms.

Here, not in tests/unit: shardrun.execute imports docker and anyio, which the unit-test
container does not have. No engine is contacted.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from shardrun.engine.docker_engine import container_options
from shardrun.model.options import OPTIONS
from shardrun.model.owner import LABEL_PROJECT, LABEL_RUN, LABEL_SHARD
from shardrun.model.shard import Shard, Volume
from shardrun.repro.docker_run import docker_run_argv

LABELS = {LABEL_RUN: "r1", LABEL_SHARD: "unit-1", LABEL_PROJECT: "demo"}

FULL = Shard(
    name="unit-1",
    command=("pytest", "-q", "tests/unit"),
    entrypoint=("/usr/bin/env",),
    env={"SHARD": "1/4", "PYTHONHASHSEED": "0"},
    volumes=(Volume("/home/me/data", "/data", read_only=True), Volume("cache", "/root/.cache")),
    workdir="/src",
    user="1000:1000",
    shm_size=256 * 1024**2,
    security_opt=("seccomp=unconfined",),
    network="none",
    cpus=1.5,
    memory=2 * 1024**3,
    timeout=600.0,
)


def test_a_fully_populated_shard_maps_every_option():
    assert container_options(FULL, "sha256:abc", LABELS) == {
        "image": "sha256:abc",
        "labels": LABELS,
        "detach": True,
        "environment": {"SHARD": "1/4", "PYTHONHASHSEED": "0"},
        "volumes": ["/home/me/data:/data:ro", "cache:/root/.cache:rw"],
        "command": ["pytest", "-q", "tests/unit"],
        "entrypoint": ["/usr/bin/env"],
        "working_dir": "/src",
        "user": "1000:1000",
        "shm_size": 256 * 1024**2,
        "security_opt": ["seccomp=unconfined"],
        "network_mode": "none",
        "nano_cpus": 1_500_000_000,
        "mem_limit": 2 * 1024**3,
    }


def test_values_are_plain_lists_and_dicts_for_docker_py():
    options = container_options(FULL, "sha256:abc", LABELS)
    for key in ("command", "entrypoint", "volumes", "security_opt"):
        assert type(options[key]) is list, key
    assert type(options["environment"]) is dict  # not the Shard's read-only proxy


def test_unset_options_are_left_out_so_the_image_defaults_apply():
    assert container_options(Shard(name="bare"), "sha256:abc", LABELS) == {
        "image": "sha256:abc",
        "labels": LABELS,
        "detach": True,
        "environment": {},
        "volumes": [],
    }


def test_the_timeout_is_not_a_container_option():
    # shardrun enforces it itself; docker-py has no such create() argument.
    assert "timeout" not in container_options(FULL, "sha256:abc", LABELS)


@pytest.mark.parametrize(("cpus", "nano"), [(0.5, 500_000_000), (2, 2_000_000_000)])
def test_cpus_become_nano_cpus(cpus, nano):
    assert container_options(Shard(name="s", cpus=cpus), "i", {})["nano_cpus"] == nano


def test_cpus_convert_exactly():
    assert container_options(Shard(name="s", cpus=1.001), "i", {})["nano_cpus"] == 1_001_000_000


# ---- agreement with `shardrun repro`'s docker run ---------------------------------------

EVERY = Shard(
    name="unit-1",
    command=("pytest", "-q"),
    entrypoint=("python", "-m"),
    env={"A": "1"},
    secret_env=("TOKEN",),
    volumes=(Volume("/home/me/data", "/data", read_only=True), Volume("cache", "/c")),
    workdir="/src",
    user="1000:1000",
    shm_size=256 * 1024**2,
    security_opt=("seccomp=unconfined", "no-new-privileges"),
    network="none",
    cpus=1.001,
    memory=2 * 1024**3,
    timeout=600.0,
    docker_socket=True,
    artifacts=("/out",),
    artifacts_when="always",
    artifacts_max=1024,
    junit="/tmp/junit.xml",
    reuse=True,
)
SECRETS = {"TOKEN": "s3cret"}
# Options shardrun acts on itself, with nothing to tell docker.
NOT_FOR_DOCKER = {
    "timeout",
    "docker_socket",
    "artifacts",
    "artifacts_when",
    "artifacts_max",
    "junit",
    "reuse",
}


def test_the_sample_shard_sets_every_option():
    bare = Shard(name="unit-1")
    assert [o.name for o in OPTIONS if getattr(EVERY, o.name) == getattr(bare, o.name)] == []


def what_docker_run_creates(argv: list[str], cli_env: dict[str, str]) -> dict:
    """The create() keywords the docker CLI's `run` sends for the flags shardrun writes, and
    the process the container then runs (entrypoint + command, as the engine joins them)."""
    words = iter(argv[argv.index("--rm") + 1 :])
    created: dict = {"labels": {}, "environment": {}, "volumes": []}
    single = {"--workdir": "working_dir", "--user": "user", "--network": "network_mode"}
    sizes = {"--shm-size": "shm_size", "--memory": "mem_limit"}
    for word in words:
        if not word.startswith("--"):
            created["image"] = word
            created["process"] = created.pop("entrypoint", []) + list(words)
            return created
        value = next(words)
        if word == "--label":
            created["labels"].update([value.split("=", 1)])
        elif word == "--env":  # a bare NAME: the CLI reads the value from its own environment
            name, _, given = value.partition("=")
            created["environment"][name] = given if "=" in value else cli_env[name]
        elif word == "--volume":
            created["volumes"].append(value)
        elif word == "--security-opt":
            created.setdefault("security_opt", []).append(value)
        elif word == "--cpus":
            created["nano_cpus"] = round(float(value) * 1e9)
        elif word == "--entrypoint":
            created["entrypoint"] = [value]
        elif word in sizes:
            created[sizes[word]] = int(value)
        else:
            created[single[word]] = value
    raise AssertionError(f"no image in {argv}")


def as_process(options: dict) -> dict:
    options = {k: v for k, v in options.items() if k != "detach"}
    options["process"] = options.pop("entrypoint", []) + options.pop("command", [])
    return options


@pytest.mark.parametrize("shard", [EVERY, Shard(name="bare")], ids=["every", "bare"])
def test_docker_run_and_create_ask_the_engine_for_the_same_container(shard):
    argv = docker_run_argv(shard, "sha256:abc", LABELS)
    created = container_options(shard, "sha256:abc", LABELS, SECRETS)
    assert what_docker_run_creates(argv, SECRETS) == as_process(created)


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.key)
def test_each_option_reaches_both_docker_run_and_create_or_neither(option):
    unset = replace(EVERY, **{option.name: getattr(Shard(name="x"), option.name)})
    created = container_options(EVERY, "i", {}, SECRETS) != container_options(
        unset, "i", {}, SECRETS
    )
    run = docker_run_argv(EVERY, "i", {}) != docker_run_argv(unset, "i", {})
    assert created == run == (option.name not in NOT_FOR_DOCKER)


def test_secret_values_reach_create_only():
    assert "s3cret" not in docker_run_argv(EVERY, "i", {})
    assert container_options(EVERY, "i", {}, SECRETS)["environment"]["TOKEN"] == "s3cret"
