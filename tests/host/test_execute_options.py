"""shardrun.execute.container_options: a Shard's options in docker-py's create() terms.

Here, not in tests/unit: shardrun.execute imports docker and anyio, which the unit-test
container does not have. No engine is contacted.
"""

from __future__ import annotations

import pytest

from shardrun.config import Volume
from shardrun.execute import LABEL_PROJECT, LABEL_RUN, LABEL_SHARD, container_options
from shardrun.plan import Shard

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
