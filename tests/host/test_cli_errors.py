"""Bad input through the real CLI: one line naming the file and key, exit 2, nothing left.

These fail before any engine is contacted, so they need no Docker.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GOOD_SHARD = '[[shard]]\nname = "a"\ncommand = "true"\n'


def shardrun(cwd, *args):
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"}  # must not be needed
    return subprocess.run(  # noqa: PLW1510 - the exit code is what we test
        [sys.executable, "-m", "shardrun", *args], cwd=cwd, capture_output=True, text=True,
        env=env, timeout=60,
    )


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    return tmp_path


@pytest.mark.parametrize(
    "toml, expected",
    [
        ('[[shard]]\nname = "a"\ncommand = "true"\ntimout = "1m"\n',
         'shards.toml: shard[1] ("a").timout: unknown key'),
        ('[[shard]]\nname = "a"\ncommand = 5\n', 'shards.toml: shard[1] ("a").command:'),
        ('[defaults]\ntimeout = "5 minutes"\n' + GOOD_SHARD, "shards.toml: defaults.timeout:"),
        ('[defaults]\nmemory = "lots"\n' + GOOD_SHARD, "shards.toml: defaults.memory:"),
        ('[image]\ndockerfile = "Nope.test"\n' + GOOD_SHARD, "shards.toml: image.dockerfile:"),
        ('[defaults]\nnetwork = "none"\n', "shards.toml: shard:"),
        (GOOD_SHARD + GOOD_SHARD, 'shards.toml: shard[2] ("a")'),
        ('[[shard]]\nname = "a"\ncount = 0\n', 'shards.toml: shard[1] ("a").count:'),
        ("[[shard]\nname = 'a'\n", "shards.toml: "),
    ],
    ids=["unknown-key", "wrong-type", "bad-duration", "bad-size", "missing-dockerfile",
         "no-shards", "duplicate-name", "zero-count", "invalid-toml"],
)
def test_malformed_config_exits_2_with_one_line(proj, toml, expected):
    (proj / "shards.toml").write_text(toml)
    before = sorted(p.name for p in proj.iterdir())

    result = shardrun(proj, "run", "--plain")

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shardrun: error: " + expected), lines[0]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in proj.iterdir()) == before  # nothing written


def test_unknown_key_suggests_the_right_one(proj):
    (proj / "shards.toml").write_text('[[shard]]\nname = "a"\ncommand = "true"\ntimout = "1m"\n')
    assert '"timeout"' in shardrun(proj, "run").stderr


def test_no_config_file_says_how_to_fix(tmp_path):
    result = shardrun(tmp_path, "run")
    assert result.returncode == 2
    assert "shards.toml" in result.stderr and "--config" in result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "--shard", "nomatch*"], '--shard "nomatch*": matches no shard'),
        (["run", "--build-arg", "NOEQUALS"], '--build-arg "NOEQUALS": expected KEY=VALUE'),
    ],
)
def test_bad_options_exit_2(proj, args, expected):
    (proj / "shards.toml").write_text(GOOD_SHARD)
    result = shardrun(proj, *args)
    assert result.returncode == 2
    assert expected in result.stderr


def test_list_prints_expanded_shards_in_order(proj):
    (proj / "shards.toml").write_text(
        '[[shard]]\nname = "u-{index}"\ncount = 2\ncommand = ["pytest", "--part", "{index}/{total}"]\n'
        '[[shard]]\nname = "lint"\ncommand = "ruff check ."\n'
    )
    result = shardrun(proj, "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "u-1   pytest --part 1/2",
        "u-2   pytest --part 2/2",
        "lint  ruff check .",
    ]


def test_pyproject_tool_table_is_used_without_shards_toml(proj):
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.shardrun]\n[[tool.shardrun.shard]]\nname = "p"\ncommand = "true"\n'
    )
    result = shardrun(proj, "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["p", "true"]


def test_expected_errors_inside_task_groups_are_shown_alone():
    from shardrun.cli.errors import _unwrap
    from shardrun.model.errors import BuildError, InfraError

    first, second = InfraError("engine a"), InfraError("engine b")
    assert _unwrap(ExceptionGroup("x", [ExceptionGroup("y", [first]), second])) is first
    assert _unwrap(BuildError("b")).args == ("b",)
    mixed = ExceptionGroup("x", [first, ValueError("bug")])
    assert _unwrap(mixed) is mixed  # an unexpected error keeps its whole story
