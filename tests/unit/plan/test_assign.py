"""shardrun.plan.assign and partition.for_job: a partition job runs the shards its plan
names as its own shards.toml makes them; the plan decides which, never how."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shardrun.config.load import load
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard
from shardrun.plan import assign, partition, plan_file
from shardrun.plan.expand import expand

TOML = """
[defaults]
env = { MODE = "ci" }

[[shard]]
name = "a"
command = "true"

[[shard]]
name = "u-{index}"
count = 2
command = "echo {index}"
"""
SPLIT = """
[[shard]]
name = "t-{index}"
split = ["tests/*.py"]
count = 2
command = ["pytest", "{files}", "--of={total}"]

[[shard]]
name = "p-{index}-of-{total}"
split = ["more/*.py"]
count = "slots"
command = "sh -c 'run {files}'"
"""
IMAGE = "sha256:" + "ab" * 32
SOCKET = {"source": "/var/run/docker.sock", "target": "/var/run/docker.sock", "read_only": False}


def config(tmp_path: Path, toml: str = TOML):
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text(toml)
    return load(tmp_path / "shards.toml")


def write_plan(cfg, path: Path, parts: list[list[dict]]) -> Path:
    data = {
        "schema": plan_file.SCHEMA,
        "image_id": IMAGE,
        "config": partition.config_digest(cfg),
        "expected": [1.0] * len(parts),
        "partitions": parts,
    }
    path.write_text(json.dumps(data))
    return path


def test_a_hand_edited_plan_gives_no_shard_what_the_config_does_not(tmp_path: Path):
    """The Docker socket, a volume, env and a command written into the plan's options
    reach none of the shards the job runs: each is the config's."""
    cfg = config(tmp_path)
    hostile = {
        "volumes": [SOCKET, {"source": "/", "target": "/host", "read_only": False}],
        "docker_socket": True,
        "env": {"LD_PRELOAD": "/x.so"},
        "command": ["sh", "-c", "id"],
        "security_opt": ["seccomp=unconfined"],
        "network": "host",
    }
    plan = write_plan(
        cfg,
        tmp_path / "p.json",
        [
            [{"name": "a", "files": [], **hostile}],
            [{"name": "u-2", "options": hostile, **hostile}, {"name": "u-1", **hostile}],
        ],
    )
    config_shards = {s.name: s for s in expand(cfg)}
    for k in (1, 2):
        share = partition.for_job(cfg, None, plan, f"{k}/2", {})
        assert share is not None
        for shard in share.shards:
            assert shard == config_shards[shard.name]
            assert shard.volumes == () and not shard.docker_socket
            assert dict(shard.env) == {"MODE": "ci"} and shard.network is None
    assert [s.name for s in share.shards] == ["u-2", "u-1"]  # the plan's order
    assert share.shards[0].command == ("echo", "2")


@pytest.mark.parametrize(
    "parts, phrase",
    [
        (
            [[{"name": "a"}, {"name": "u-1"}], [{"name": "u-2"}, {"name": "evil"}]],
            'its shard "evil" is not one shards.toml makes',
        ),
        ([[{"name": "a"}], [{"name": "u-1"}]], 'it has no shard "u-2"'),
        (
            [[{"name": "a", "files": ["x.py"]}], [{"name": "u-1"}, {"name": "u-2"}]],
            'it gives files to "a", which has no split',
        ),
    ],
)
def test_a_plan_that_does_not_fit_the_config_is_one_line(tmp_path: Path, parts, phrase):
    cfg = config(tmp_path)
    plan = write_plan(cfg, tmp_path / "p.json", parts)
    with pytest.raises(ConfigError) as info:
        partition.for_job(cfg, None, plan, "1/2", {})
    message = str(info.value)
    assert phrase in message and "p.json does not fit shards.toml" in message
    assert "shardrun build --output FILE --partitions N" in message and "\n" not in message


CONTEXT = [
    "tests/a.py",
    "tests/b.py",
    "tests/c.py",
    "more/x.py",
    "more/y.py",
    "more/z.py",
    "secrets.txt",
]


def groups(t: dict[str, list[str]], p: dict[str, list[str]]) -> list[Shard]:
    return [Shard(name=n, files=tuple(f)) for n, f in {**t, **p}.items()]


def test_split_groups_run_the_plans_files_in_the_configs_command(tmp_path: Path):
    cfg = config(tmp_path, SPLIT)
    planned = groups(
        {"t-1": ["tests/b.py"], "t-2": ["tests/a.py", "tests/c.py"]},
        {f"p-{i}-of-3": [f"more/{f}.py"] for i, f in enumerate("xyz", 1)},
    )
    shards = assign.from_config(cfg, planned, CONTEXT)
    assert shards["t-1"].command == ("pytest", "tests/b.py", "--of=2")
    assert shards["t-2"].command == ("pytest", "tests/a.py", "tests/c.py", "--of=2")
    assert shards["t-2"].files == ("tests/a.py", "tests/c.py")
    # count = "slots": as many groups as the build job made, {total} and all.
    assert shards["p-3-of-3"].command == ("sh", "-c", "run more/z.py")


@pytest.mark.parametrize(
    "t, phrase",
    [
        (
            {"t-1": ["secrets.txt"], "t-2": ["tests/a.py"]},
            'it gives "t-1" the file "secrets.txt", which its split in shards.toml does not match',
        ),
        ({"t-1": ["tests/gone.py"], "t-2": ["tests/a.py"]}, '"tests/gone.py"'),
        ({"t-1": [], "t-2": ["tests/a.py"]}, 'it gives "t-1" no files to run'),
    ],
)
def test_a_split_file_the_config_does_not_match_here_is_refused(tmp_path: Path, t, phrase):
    cfg = config(tmp_path, SPLIT)
    with pytest.raises(ValueError, match=phrase):
        assign.from_config(cfg, groups(t, {"p-1-of-1": ["more/x.py"]}), CONTEXT)


def test_a_per_slot_split_with_no_group_in_the_plan_is_refused(tmp_path: Path):
    cfg = config(tmp_path, SPLIT)
    with pytest.raises(ValueError, match=r'it has no group of "p-{index}-of-{total}"'):
        assign.from_config(cfg, groups({"t-1": ["tests/a.py"], "t-2": ["tests/b.py"]}, {}), CONTEXT)


def test_the_configs_shard_of_a_name_for_a_recorded_one(tmp_path: Path):
    cfg = config(
        tmp_path, TOML + SPLIT.replace('command = "sh', 'volumes = ["./d:/d"]\ncommand = "sh')
    )
    assert assign.shard_named(cfg, "u-2").command == ("echo", "2")
    assert assign.shard_named(cfg, "t-2").name == "t-2"
    group = assign.shard_named(cfg, "p-7-of-9")  # a group of a per-slot split, any slots
    assert group is not None and group.name == "p-7-of-9"
    assert group.volumes[0].target == "/d"
    assert assign.shard_named(cfg, "p-x-of-9") is None and assign.shard_named(cfg, "nope") is None
