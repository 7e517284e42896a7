"""Bad input through the real CLI: one line naming the file and key, exit 2, nothing left.

These fail before any engine is contacted, so they need no Docker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

GOOD_SHARD = '[[shard]]\nname = "a"\ncommand = "true"\n'


def shardrun(cwd, *args):
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"}  # must not be needed
    return subprocess.run(  # noqa: PLW1510 - the exit code is what we test
        [sys.executable, "-m", "shardrun", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    return tmp_path


@pytest.mark.parametrize(
    "toml, expected",
    [
        (
            '[[shard]]\nname = "a"\ncommand = "true"\ntimout = "1m"\n',
            'shards.toml: shard[1] ("a").timout: unknown key',
        ),
        ('[[shard]]\nname = "a"\ncommand = 5\n', 'shards.toml: shard[1] ("a").command:'),
        ('[defaults]\ntimeout = "5 minutes"\n' + GOOD_SHARD, "shards.toml: defaults.timeout:"),
        (
            '[[shard]]\nname = "a"\ncommand = "true"\nsplit-together = ["t/**"]\n',
            'shards.toml: shard[1] ("a").split-together: without a split',
        ),
        (
            (
                '[[shard]]\nname = "a"\ncommand = "x {files}"\nsplit = ["t/*.py"]\n'
                'split-together = ["/abs/**"]\n'
            ),
            'shards.toml: shard[1] ("a").split-together[1]: "/abs/**" is not a path',
        ),
        ('[defaults]\nmemory = "lots"\n' + GOOD_SHARD, "shards.toml: defaults.memory:"),
        ('[image]\ndockerfile = "Nope.test"\n' + GOOD_SHARD, "shards.toml: image.dockerfile:"),
        ('[defaults]\nnetwork = "none"\n', "shards.toml: shard:"),
        (GOOD_SHARD + GOOD_SHARD, 'shards.toml: shard[2] ("a")'),
        ('[[shard]]\nname = "a"\ncount = 0\n', 'shards.toml: shard[1] ("a").count:'),
        ("[[shard]\nname = 'a'\n", "shards.toml: "),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "bad-duration",
        "together-no-split",
        "together-abs",
        "bad-size",
        "missing-dockerfile",
        "no-shards",
        "duplicate-name",
        "zero-count",
        "invalid-toml",
    ],
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


DAMAGED = {
    "a non-object shard": {"run_id": "r1", "shards": [1, {"name": "a", "status": "FAIL"}]},
    "shards not a list": {"run_id": "r1", "shards": "abc"},
    "a shard without a name": {"run_id": "r1", "shards": [{"status": "FAIL"}]},
    "a started that is no time": {"run_id": "r1", "started": "noon", "shards": []},
    "workers not tables": {"run_id": "r1", "shards": [], "workers": ["w"]},
    "an image that is no name": {"run_id": "r1", "shards": [{"name": "a", "image": 5}]},
}


def _damaged_run(proj, report) -> None:
    (proj / "shards.toml").write_text(GOOD_SHARD)
    folder = proj / ".shardrun" / "runs" / "r1"
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(report))
    (proj / ".shardrun" / "runs" / "latest").symlink_to("r1")


@pytest.mark.parametrize("report", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_report_is_a_missing_run_or_one_line_never_an_internal_error(proj, report):
    _damaged_run(proj, report)

    listed = shardrun(proj, "runs")
    assert listed.returncode == 0, listed.stderr
    assert "r1" not in listed.stdout  # not a run shardrun can read back
    for args in (("run", "--failed"), ("show",), ("repro", "a", "--run", "r1", "--print")):
        done = shardrun(proj, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "is not a shardrun report" in done.stderr


def test_a_timings_file_of_the_wrong_shape_is_no_history(proj):
    (proj / "shards.toml").write_text(GOOD_SHARD + GOOD_SHARD.replace('"a"', '"b"'))
    (proj / ".shardrun").mkdir()
    for damaged in ('{"durations": [1, 2]}', '{"durations": {"a": "NaN", "b": 1e999}}', "[]"):
        (proj / ".shardrun" / "timings.json").write_text(damaged)
        listed = shardrun(proj, "list")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split()[::2] == ["a", "b"]


def test_a_duration_of_more_than_a_year_is_a_config_error(proj):
    (proj / "shards.toml").write_text(GOOD_SHARD + 'timeout = "99999999999999999999h"\n')
    done = shardrun(proj, "list")
    assert done.returncode == 2
    assert 'shard[1] ("a").timeout: "99999999999999999999h" is longer than a year' in done.stderr


def test_a_split_together_glob_that_matches_no_split_file_is_named(proj):
    (proj / "t").mkdir()
    (proj / "t" / "test_a.py").write_text("")
    (proj / "shards.toml").write_text(
        '[[shard]]\nname = "a"\ncommand = "x {files}"\nsplit = ["t/*.py"]\n'
        'split-together = ["t/db_*.py"]\n'
    )
    done = shardrun(proj, "list")
    assert done.returncode == 2
    assert 'split-together[1]: "t/db_*.py" matches none of the split\'s files' in done.stderr


def test_output_into_a_closed_pipe_stops_quietly_never_an_internal_error(proj):
    # `shardrun runs | head -1`: the reader is gone before shardrun writes its rows.
    (proj / "shards.toml").write_text(GOOD_SHARD)
    runs = proj / ".shardrun" / "runs"
    for k in range(3):
        (runs / f"2026010{k}-000000-abc").mkdir(parents=True)
        report = {"started": 1, "image_id": "sha256:x", "exit_code": 0, "shards": []}
        (runs / f"2026010{k}-000000-abc" / "report.json").write_text(json.dumps(report))
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"}
    done = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "shardrun", "runs"],
        cwd=proj,
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=60,
    )
    os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("name", ["image.tar.zst", "image"])
def test_a_fifo_given_as_the_image_file_is_one_line_at_once(proj, name):
    # Without a suffix a name could be a tag; one that is there on disk is a file to read.
    (proj / "shards.toml").write_text(GOOD_SHARD)
    os.mkfifo(proj / name)
    done = shardrun(proj, "run", "--image", name)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "FIFO" in done.stderr
