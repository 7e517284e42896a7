"""`shardrun ci github`: how each job installs shardrun is the user's explicit choice
(issue 27: the old default, `pip install shardrun`, named no package on PyPI, so every
generated workflow failed at its first step). Exactly one of `--install COMMAND` and
`--install-from SPEC`; SPEC is a pinned git URL or a wheel, quoted for the shell.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest
import yaml
from typer.testing import CliRunner

from shardrun.cli.app import app
from tests.host.test_ci_workflow import lint, workflow


def ci_github(*args: str):
    return CliRunner().invoke(app, ["ci", "github", "-n", "2", *args])


def install_lines(text: str) -> set[str]:
    return {job["steps"][2]["run"] for job in yaml.safe_load(text)["jobs"].values()}


def assert_refused(done, option: str) -> str:
    assert done.exit_code == 2, done.output
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"shardrun: error: {option}"), done.stderr
    return done.stderr.removesuffix("\n")


def test_neither_option_is_one_line_showing_both_forms():
    message = assert_refused(ci_github(), "say how each job installs shardrun")
    assert "--install-from git+https://" in message and "@TAG" in message
    assert ".whl" in message and "--install '" in message


def test_both_options_are_refused():
    done = ci_github("--install", "pip install x", "--install-from", "dist/x.whl")
    assert "give one of them" in assert_refused(done, "--install and --install-from")


def test_install_is_the_line_each_job_runs():
    text = workflow("-n", "2", "--install", "pip install -r ci/shardrun.txt")
    assert install_lines(text) == {"pip install -r ci/shardrun.txt"}


SPECS = [
    "git+https://github.com/example/shardrun@v0.1.0",
    "git+https://github.com/example/shardrun.git@3f2a9c1#egg=shardrun",
    "git+https://github.com/example/shardrun@v0.1.0#subdirectory=tool&egg=shardrun",
    "git+ssh://git@github.com/example/shardrun@v0.1.0",
    "dist/shardrun-0.1.0-py3-none-any.whl",
    "https://example.com/releases/shardrun-0.1.0-py3-none-any.whl",
    # Shell words in a path: quoted, so pip gets the path and the shell runs nothing.
    "vendor/it's;touch${IFS}pwned$(id)`id`&.whl",
]


@pytest.mark.parametrize("spec", SPECS)
def test_install_from_becomes_pip_install_of_exactly_that_spec(tmp_path, spec):
    [line] = install_lines(workflow("-n", "2", "--install-from", spec))
    assert line.startswith("pip install '") and shlex.split(line) == ["pip", "install", spec]
    # What a job's shell does with the line: pip is stood in for by printf.
    echoed = line.replace("pip install", "printf %s", 1)
    done = subprocess.run(
        ["bash", "-c", echoed], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout == spec and list(tmp_path.iterdir()) == []


def test_a_workflow_installing_from_a_wheel_passes_actionlint(tmp_path):
    done = lint(tmp_path, workflow("-n", "3", "--install-from", SPECS[-1]))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        # A bare git URL installs whatever the branch holds on the day of each run.
        ("git+https://github.com/example/shardrun", "names no @TAG"),
        ("git+https://github.com/example/shardrun.git#egg=shardrun", "names no @TAG"),
        ("git+https://user@github.com/example/shardrun", "names no @TAG"),
        ("git+https://github.com/example/shardrun@", "names no @TAG"),
        ("git+http://github.com/example/shardrun@v1", "git+https://"),
        ("git+file:///srv/shardrun@v1", "git+https://"),
        ("git://github.com/example/shardrun@v1", "nor a wheel"),
        ("shardrun", "nor a wheel"),
        ("shardrun==0.1.0", "nor a wheel"),
        (".", "nor a wheel"),
        ("dist/shardrun-0.1.0.tar.gz", "nor a wheel"),
        ("/opt/wheels/shardrun-0.1.0-py3-none-any.whl", "absolute path"),
        ("http://example.com/shardrun-0.1.0-py3-none-any.whl", "not https://"),
        ("-e git+https://github.com/example/shardrun@v1", "one URL or path"),
        ("--index-url=https://evil.example/x.whl", "one URL or path"),
        ("dist/my shardrun.whl", "one URL or path"),
        ("x.whl\n      - run: echo PWNED", "U+000A"),
        ("x.whl\u2028      - run: echo PWNED", "U+2028"),
        ("x.whl\r", "U+000D"),
        ("git+https://github.com/example/shardrun@${{ github.head_ref }}", "${{"),
        ("${{ github.event.issue.title }}.whl", "${{"),
        ("dist/" + "x" * 500 + ".whl", "over the limit of 500"),
        ("", "is empty"),
    ],
)
def test_a_bad_spec_is_one_line_and_exit_2(spec, why):
    message = assert_refused(ci_github("--install-from", spec), "--install-from ")
    assert why in message and message.isprintable()
