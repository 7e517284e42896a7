"""plan/reuse_key: the image's content, the key of a shard's pass, and which shards may be
reused. Every input the key must hold changes it; what it must not hold does not."""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest

from shardrun.model.shard import RunOptions, Shard, Volume
from shardrun.plan import reuse_key
from shardrun.plan.reuse_key import content_of_config, content_of_inspect, eligible, shard_key
from shardrun.state.results_record import KEY

DIFF_IDS = ["sha256:" + c * 64 for c in "abc"]
# Worked out with sha256sum: chain[1] = sha256("<diff 0> <diff 1>"), chain[2] likewise on.
CHAIN = "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588"
# sha256 of the canonical JSON of that chain and the config below, also by sha256sum.
CONTENT = "sha256:68b9ad6d91f910dea43d3ad618fe52bc510c407416eca54368e46b52e67d304c"

# The same image, as `docker image inspect` gives it and as its archive's config blob holds
# it: different keys, nulls where the blob leaves a key out, IDs and times of its own.
INSPECT = {
    "Id": "sha256:" + "1" * 64,
    "RepoTags": ["shardrun/image:abc"],
    "Created": "2024-05-01T10:00:00.123456789Z",
    "Config": {
        "Hostname": "",
        "User": "",
        "Env": ["PATH=/usr/bin"],
        "Cmd": ["pytest"],
        "Image": "",
        "WorkingDir": "/src",
        "Entrypoint": None,
        "Labels": {"org.example": "x"},
    },
    "Architecture": "amd64",
    "Os": "linux",
    "Size": 123,
    "RootFS": {"Type": "layers", "Layers": DIFF_IDS},
}
CONFIG_BLOB = {
    "architecture": "amd64",
    "created": "2025-01-01T00:00:00Z",
    "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["pytest"], "WorkingDir": "/src"},
    "history": [{"created_by": "COPY . /src"}],
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": DIFF_IDS},
}

# ---- content ---------------------------------------------------------------------------


def test_the_content_is_the_chain_id_and_the_run_config_as_canonical_json() -> None:
    assert content_of_inspect(INSPECT) == CONTENT
    config = (
        '{"Cmd":["pytest"],"Entrypoint":[],"Env":["PATH=/usr/bin"],"User":"","WorkingDir":"/src"}'
    )
    text = f'{{"chain":"{CHAIN}","config":{config}}}'
    assert hashlib.sha256(text.encode()).hexdigest() == CONTENT.removeprefix("sha256:")


def test_inspect_and_config_blob_of_one_image_agree() -> None:
    assert content_of_config(CONFIG_BLOB) == content_of_inspect(INSPECT)


def test_id_creation_time_labels_and_history_are_not_content() -> None:
    rebuilt = copy.deepcopy(INSPECT)
    rebuilt["Id"] = "sha256:" + "2" * 64
    rebuilt["Created"] = "2030-01-01T00:00:00Z"
    rebuilt["Config"]["Labels"] = {"built-on": "another machine"}
    rebuilt["Config"]["Hostname"] = "abc123"
    assert content_of_inspect(rebuilt) == CONTENT


@pytest.mark.parametrize("missing", [None, "absent", []])
def test_a_null_a_missing_and_an_empty_config_field_are_the_same(missing) -> None:
    inspect = copy.deepcopy(INSPECT)
    if missing == "absent":
        del inspect["Config"]["Entrypoint"]
    else:
        inspect["Config"]["Entrypoint"] = missing
    assert content_of_inspect(inspect) == CONTENT
    bare = {"RootFS": {"Layers": DIFF_IDS}}
    assert content_of_inspect(bare) == content_of_inspect({**bare, "Config": None})
    assert content_of_inspect(bare) == content_of_config({"rootfs": {"diff_ids": DIFF_IDS}})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Env", ["PATH=/usr/bin", "DEBUG=1"]),
        ("Entrypoint", ["/entry.sh"]),
        ("Cmd", ["pytest", "-x"]),
        ("WorkingDir", "/app"),
        ("User", "1000"),
    ],
)
def test_each_run_field_of_the_config_is_content(field, value) -> None:
    inspect = copy.deepcopy(INSPECT)
    inspect["Config"][field] = value
    blob = copy.deepcopy(CONFIG_BLOB)
    blob["config"][field] = value
    assert content_of_inspect(inspect) != CONTENT
    assert content_of_inspect(inspect) == content_of_config(blob)


@pytest.mark.parametrize(
    "layers",
    [DIFF_IDS[:2], DIFF_IDS[::-1], [*DIFF_IDS, "sha256:" + "d" * 64], []],
    ids=["fewer", "reordered", "more", "none"],
)
def test_the_layers_are_content(layers) -> None:
    assert content_of_inspect({**INSPECT, "RootFS": {"Layers": layers}}) != CONTENT


@pytest.mark.parametrize(
    ("inspect", "phrase"),
    [
        ({"Config": {}}, "RootFS is missing"),
        ({"RootFS": "layers"}, "RootFS is a str"),
        ({"RootFS": {"Type": "layers"}}, "RootFS.Layers is missing"),
        ({"RootFS": {"Layers": [1]}}, "RootFS.Layers[0] is an int"),
        ({"RootFS": {"Layers": ["not a digest"]}}, "RootFS.Layers[0]"),
        ({"RootFS": {"Layers": DIFF_IDS}, "Config": "x"}, "Config is a str"),
        ({"RootFS": {"Layers": DIFF_IDS}, "Config": {"Env": [1]}}, "Config.Env is a list"),
        ({"RootFS": {"Layers": DIFF_IDS}, "Config": {"Cmd": "pytest"}}, "Config.Cmd is a str"),
        ({"RootFS": {"Layers": DIFF_IDS}, "Config": {"User": 0}}, "Config.User is an int"),
        ([], "the image inspect is a list"),
    ],
)
def test_a_malformed_inspect_is_one_value_error(inspect, phrase) -> None:
    with pytest.raises(ValueError, match=r"^[^\n]+$") as info:
        content_of_inspect(inspect)
    assert phrase in str(info.value)


def test_a_malformed_config_blob_is_one_value_error() -> None:
    for blob in ({}, {"rootfs": {"diff_ids": None}}, {"rootfs": {"diff_ids": [None]}}, "x"):
        with pytest.raises(ValueError, match=r"rootfs|config"):
            content_of_config(blob)  # type: ignore[arg-type]


# ---- the key ---------------------------------------------------------------------------

OTHER_CONTENT = "sha256:" + "e" * 64
SECRETS = {"TOKEN": "s3cret", "UNUSED": "whatever"}
BASE = Shard(
    name="unit-1",
    command=("pytest", "-q", "t/a.py"),
    env={"A": "1"},
    secret_env=("TOKEN",),
    volumes=(Volume("cache", "/c"),),
    timeout=60.0,
    network="none",
    files=("t/a.py",),
    reuse=True,
)
# One change to each of the shard's run options and to its files: each is an input.
CHANGES = {
    "command": ("pytest", "-q", "t/b.py"),
    "entrypoint": ("/entry.sh",),
    "env": {"A": "2"},
    "volumes": (Volume("cache", "/c", read_only=True),),
    "workdir": "/src",
    "user": "1000",
    "shm_size": 1024,
    "security_opt": ("no-new-privileges",),
    "network": "bridge",
    "cpus": 2.0,
    "memory": 2048,
    "timeout": 61.0,
    "secret_env": ("TOKEN", "UNUSED"),
    "docker_socket": True,
    "artifacts": ("/out",),
    "artifacts_when": "always",
    "artifacts_max": 1024,
    "junit": "/tmp/junit.xml",
    "files": ("t/a.py", "t/b.py"),
}


def key(shard: Shard = BASE, content: str = CONTENT, secrets=SECRETS) -> str:
    return shard_key(shard, content, secrets)


def test_a_key_is_a_digest_the_record_accepts_and_the_same_every_time() -> None:
    assert KEY.fullmatch(key())
    assert key() == key(replace(BASE))


def test_every_run_option_but_reuse_has_a_change_below() -> None:
    # A new option goes into the key; this makes its test be written too.
    options = {f.name for f in fields(RunOptions)} - {"reuse"}
    assert set(CHANGES) == options | {"files"}


@pytest.mark.parametrize("option", sorted(CHANGES))
def test_a_change_to_each_option_changes_the_key(option) -> None:
    changed = replace(BASE, **{option: CHANGES[option]})
    assert getattr(changed, option) != getattr(BASE, option)
    assert key(changed) != key()


def test_a_new_env_variable_changes_the_key() -> None:
    assert key(replace(BASE, env={"A": "1", "B": ""})) != key()


def test_a_change_of_content_changes_the_key() -> None:
    assert key(content=OTHER_CONTENT) != key()


def test_a_secrets_value_changes_the_key_and_an_unused_secret_does_not() -> None:
    assert key(secrets={**SECRETS, "TOKEN": "s3cret2"}) != key()
    assert key(secrets={"TOKEN": "s3cret"}) == key()
    assert key(secrets={"UNUSED": "whatever"}) != key()  # TOKEN unset is not any value


def test_the_key_version_is_in_the_key(monkeypatch) -> None:
    before = key()
    monkeypatch.setattr(reuse_key, "KEY_VERSION", reuse_key.KEY_VERSION + 1)
    assert key() != before


def test_the_name_and_reuse_itself_are_not_in_the_key() -> None:
    assert key(replace(BASE, name="renamed")) == key()
    assert key(replace(BASE, reuse=None)) == key()
    assert key(replace(BASE, reuse_own=True)) == key()


def test_env_order_is_not_in_the_key() -> None:
    one = replace(BASE, env={"A": "1", "B": "2"})
    other = replace(BASE, env={"B": "2", "A": "1"})
    assert key(one) == key(other)


def test_a_secret_is_keyed_by_scrypt_salted_with_its_name_and_the_content() -> None:
    # A guess at a value costs one scrypt of these parameters, for one name on one image.
    expected = hashlib.scrypt(
        b"s3cret",
        salt=b"shardrun-reuse-key/TOKEN" + CONTENT.encode(),
        n=2**14,
        r=8,
        p=1,
        dklen=32,
    ).hex()
    assert reuse_key._secret_digest("TOKEN", "s3cret", CONTENT) == expected
    assert reuse_key._secret_digest("OTHER", "s3cret", CONTENT) != expected
    assert reuse_key._secret_digest("TOKEN", "s3cret", OTHER_CONTENT) != expected


def test_a_value_that_is_not_utf8_is_keyed_without_an_error() -> None:
    # os.environ gives undecodable bytes as lone surrogates.
    assert key(secrets={"TOKEN": "caf\udce9"}) != key()


def test_the_key_is_the_same_in_another_process() -> None:
    # Hash randomisation and dict order must not reach it: a CI matrix's jobs compare keys.
    code = "from tests.unit.plan.test_reuse_key import key; print(key())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        cwd=Path(__file__).resolve().parents[3],
    )
    assert out.stdout.strip() == key()


# ---- eligibility -------------------------------------------------------------------------

BIND = Volume("/home/me/data", "/data", read_only=True)
SOCKET = Volume("/var/run/docker.sock", "/var/run/docker.sock")
NAMED = Volume("cache", "/c")


@pytest.mark.parametrize(
    ("shard", "expected"),
    [
        (Shard(name="a"), False),
        (Shard(name="a", reuse=False), False),
        (Shard(name="a", reuse=True), True),
        (Shard(name="a", reuse=True, volumes=(NAMED,)), True),
        (Shard(name="a", reuse=True, volumes=(NAMED, BIND)), False),
        (Shard(name="a", reuse=True, volumes=(BIND,), reuse_own=True), True),
        (Shard(name="a", reuse=True, docker_socket=True), False),
        (Shard(name="a", reuse=True, docker_socket=True, reuse_own=True), True),
        (Shard(name="a", reuse=True, docker_socket=True, volumes=(SOCKET,)), False),
        (Shard(name="a", reuse=True, volumes=(SOCKET,), reuse_own=True), True),
        # Its own reuse = false won over [defaults]: reuse_own cannot arise then, but a
        # shard made by hand that says so still does not reuse.
        (Shard(name="a", reuse=False, reuse_own=True), False),
    ],
)
def test_who_may_be_reused(shard, expected) -> None:
    assert eligible(shard) is expected


def test_volumes_the_workers_add_leave_only_shards_that_ask_themselves() -> None:
    assert eligible(Shard(name="a", reuse=True), worker_volumes=True) is False
    assert eligible(Shard(name="a", reuse=True, reuse_own=True), worker_volumes=True) is True
    assert eligible(Shard(name="a"), worker_volumes=True) is False
