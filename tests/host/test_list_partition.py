"""`shardrun list --partition K/N`: a CI matrix job's share, read from the build job's
plan through the real CLI; no engine is needed, nor contacted."""

from __future__ import annotations

import json

import pytest

from shardrun.config.load import load
from shardrun.plan import partition
from shardrun.plan.expand import expand
from tests.host.test_cli_errors import shardrun

TOML = "".join(f'[[shard]]\nname = "s{i}"\ncommand = "true"\n' for i in range(5))


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text(TOML)
    cfg = load(tmp_path / "shards.toml")
    times = {f"s{i}": float(i + 1) for i in range(5)}
    plan = partition.make(
        expand(cfg), 2, times, {}, "sha256:" + "ab" * 32, partition.config_digest(cfg)
    )
    partition.save(plan, tmp_path / "image.plan.json")
    return tmp_path


def test_list_shows_one_partition_from_the_plan_beside_the_image_file(proj):
    done = shardrun(proj, "list", "--image", "image.tar.zst", "--partition", "2/2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "partition 2/2 of image.plan.json: 2 shards, expected ~7.0s"
    assert [line.split()[0] for line in lines[1:3]] == ["s3", "s2"]
    assert lines[-1] == "partitions: 1 ~8.0s, 2 ~7.0s; expected makespan ~8.0s"


def test_list_with_a_plan_and_no_partition_shows_every_partition(proj):
    done = shardrun(proj, "list", "--plan", "image.plan.json")
    assert done.returncode == 0, done.stderr
    heads = [line for line in done.stdout.splitlines() if line.startswith("partition ")]
    assert len(heads) == 2


def test_list_takes_the_partition_from_the_ci_variables(proj, monkeypatch):
    monkeypatch.setenv("CI_NODE_INDEX", "1")
    monkeypatch.setenv("CI_NODE_TOTAL", "2")
    done = shardrun(proj, "list", "--image", "image.tar.zst")
    assert done.stdout.splitlines()[0].startswith("partition 1/2 ")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--partition", "3/2"], "not a partition K/N"),
        (["--partition", "1/3"], "a plan for 2 partitions, not 3"),
        (["--partition", "1/2", "--plan", "nope.json"], "nope.json: no such plan"),
    ],
)
def test_a_wrong_partition_or_plan_is_one_line_and_exit_2(proj, args, expected):
    done = shardrun(proj, "list", "--image", "image.tar.zst", *args)
    assert done.returncode == 2
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_plan_of_another_config_is_refused(proj):
    (proj / "shards.toml").write_text(TOML + '[[shard]]\nname = "new"\ncommand = "true"\n')
    done = shardrun(proj, "list", "--plan", "image.plan.json", "--partition", "1/2")
    assert done.returncode == 2 and "another shards.toml" in done.stderr


def _edit_plan(proj, change) -> None:
    path = proj / "image.plan.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_list_shows_the_configs_commands_not_the_plans(proj):
    """A plan carries names only: what `list` shows a shard run is what the job's
    shards.toml makes it run, whatever a hand-edited plan says."""

    def hijack(data):
        for part in data["partitions"]:
            for entry in part:
                entry.update(command=["sh", "-c", "echo HIJACKED"], docker_socket=True)

    _edit_plan(proj, hijack)
    done = shardrun(proj, "list", "--plan", "image.plan.json", "--partition", "2/2")
    assert done.returncode == 0, done.stderr
    shards = done.stdout.splitlines()[1:3]
    assert [line.split()[-1] for line in shards] == ["true", "true"]
    assert "HIJACKED" not in done.stdout


def test_a_plan_that_does_not_fit_the_config_is_refused(proj):
    """Same config digest, other shards: a hand-edited plan, refused as a job refuses it."""
    _edit_plan(proj, lambda data: data["partitions"][1][0].update(name="extra"))
    done = shardrun(proj, "list", "--plan", "image.plan.json", "--partition", "1/2")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "image.plan.json does not fit shards.toml: it has no shard" in done.stderr
