"""shardrun.state.shard_record: a shard's options as a report records them, read back from
a file that may come from another machine (pure)."""

from __future__ import annotations

import json

import pytest

from shardrun.model.shard import Shard, Volume, to_json
from shardrun.state.shard_record import from_json, on_this_host

SHARD = Shard(
    name="s-2",
    command=("pytest", "-k", "x y"),
    entrypoint=("/run.sh",),
    env={"A": "1"},
    volumes=(Volume("/src", "/src", read_only=True), Volume("cache", "/c")),
    workdir="/src",
    user="1000:1000",
    shm_size=1024,
    security_opt=("seccomp=unconfined",),
    network="none",
    cpus=1.5,
    memory=2**30,
    timeout=60.0,
    secret_env=("TOKEN",),
    docker_socket=False,
    artifacts=("/out",),
    artifacts_when="always",
    artifacts_max=4096,
    junit="/j.xml",
    files=("tests/a.py", "tests/b c.py"),
)
SOCKET = {"source": "/var/run/docker.sock", "target": "/var/run/docker.sock", "read_only": False}


def test_every_option_survives_its_record():
    assert from_json(json.loads(json.dumps(to_json(SHARD)))) == SHARD
    assert from_json({"name": "bare"}) == Shard(name="bare")  # an older record: defaults


@pytest.mark.parametrize(
    "change, phrase",
    [
        ({"name": "../../tmp/x"}, "is not a shard name"),
        ({"name": "a/b"}, "is not a shard name"),
        ({"name": ".."}, "is not a shard name"),
        ({"name": "x" * 101}, "is not a shard name"),
        ({"name": 3}, "is not a shard name"),
        ({"timeout": "soon"}, "options.timeout"),
        ({"timeout": 1e308}, "longer than a year"),
        ({"timeout": -1}, "not a positive duration"),
        ({"cpus": 0}, "options.cpus"),
        ({"memory": 2**70}, "too large"),
        ({"command": []}, "options.command: is empty"),
        ({"command": [1]}, "options.command"),
        ({"env": {"A": ["x"]}}, "options.env"),
        ({"env": "A=1"}, "options.env"),
        ({"volumes": ["/etc:/etc"]}, "not an object"),
        ({"volumes": [{"source": "/a:/b", "target": "/c", "read_only": False}]}, "not a volume"),
        ({"volumes": [{"source": "/a", "target": "rel", "read_only": False}]}, "not an absolute"),
        ({"volumes": [SOCKET]}, "mounts the Docker socket without docker-socket"),
        ({"secret_env": ["1BAD"]}, "options.secret_env"),
        ({"workdir": "relative"}, "options.workdir"),
        ({"artifacts_when": "never"}, "options.artifacts_when"),
        ({"junit": "/a\0b"}, "options.junit"),
        ({"files": ["/etc/passwd"]}, "not a relative path"),
        ({"files": ["../x"]}, "not a relative path"),
        ({"files": "tests"}, "expected a list"),
        ({"docker_socket": "yes"}, "options.docker_socket"),
    ],
)
def test_a_record_is_checked_as_shards_toml_is(change, phrase):
    data = {**to_json(SHARD), **change}
    with pytest.raises(ValueError, match="not a recorded shard") as info:
        from_json(data)
    assert phrase in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("data", [None, [], "s-1", 3])
def test_a_record_that_is_no_object_is_refused(data):
    with pytest.raises(ValueError, match="not a recorded shard"):
        from_json(data)


def test_the_socket_is_read_back_only_with_its_own_docker_socket():
    asked = from_json({"name": "dind", "docker_socket": True, "volumes": [SOCKET]})
    assert asked.docker_socket and asked.volumes[0].gives_engine


def test_what_reaches_the_host_comes_from_this_config_and_the_rest_as_recorded():
    recorded = from_json(
        {
            **to_json(SHARD),
            "docker_socket": True,
            "network": "host",
            "volumes": [SOCKET, {"source": "/home", "target": "/h", "read_only": False}],
            "security_opt": ["apparmor=unconfined"],
        }
    )
    config = Shard(name="s-2", command=("other",), volumes=(Volume("/proj/src", "/src"),))
    here = on_this_host(recorded, config)
    assert here.volumes == config.volumes and here.docker_socket is None
    assert here.security_opt == () and here.network is None
    assert here.command == SHARD.command and here.env == SHARD.env  # exact repro inside
    assert here.files == SHARD.files and here.timeout == SHARD.timeout

    gone = on_this_host(recorded, None)  # the shard is no longer in the config
    assert gone.volumes == () and not gone.docker_socket and gone.network is None


def test_a_config_that_grants_the_socket_keeps_it():
    config = Shard(name="dind", docker_socket=True, volumes=(Volume(**SOCKET),))
    recorded = from_json({"name": "dind", "command": ["docker", "ps"]})
    assert on_this_host(recorded, config).volumes == config.volumes
