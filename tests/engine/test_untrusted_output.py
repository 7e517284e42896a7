"""What a test writes is untrusted: real containers write forged CI commands, secrets and
pathological files, the way a stranger's pull request would on a self-hosted runner.

Each test reproduces one finding of issue 15 against a real engine: the exact injected
lines, the secret split across stdout and stderr, the 200 MB attribute, the 2 GB sparse
JUnit file and the 20 GB sparse artifact.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.engine.conftest import shards_toml

DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY s/ /s/
"""

SECRET = "s3cr3t-Tok3n-4711"

# A JUnit file whose names forge workflow commands once a line break is decoded, and an
# output that tries every workflow command an attacker would want.
FORGE = r"""
mkdir -p /out
printf '<testsuite><testcase classname="c&#13;::error::z" name="x&#10;::add-mask::y">'\
'<failure message="m&#10;::set-env name=X::y">t</failure></testcase></testsuite>' > /tmp/j.xml
echo '::stop-commands::tok'
echo '::set-env name=X::y'
echo '::add-mask::zz'
echo '::endgroup::'
echo '::error::fake'
printf 'red\033[31m alert\n'
echo x > "$(printf '/out/b\033[31mred')"
exit 1
"""

# The secret: half on stdout, bytes on stderr, the other half on stdout; in every part of
# the JUnit file; in a text artifact.
LEAK = r"""
mkdir -p /out
half=$(echo "$TOKEN" | cut -c1-8); rest=$(echo "$TOKEN" | cut -c9-)
printf '%s' "$half"; printf 'noise' >&2; printf '%s\n' "$rest"
printf '<testsuite><testcase classname="k.%s" name="t_%s"><failure message="got %s">%s</failure>'\
'<system-out>%s</system-out></testcase></testsuite>' "$TOKEN" "$TOKEN" "$TOKEN" "$TOKEN" "$TOKEN" \
> /tmp/j.xml
echo "token=$TOKEN" > /out/env.txt
exit 1
"""


def _project(project, scripts: dict[str, str], body: str) -> None:
    project.write("Dockerfile.test", DOCKERFILE)
    for name, text in scripts.items():
        project.write(f"s/{name}", text)
    project.write("shards.toml", shards_toml(project, body))


def _outside_fences(stdout: str) -> list[str]:
    """The lines GitHub would read as commands: all but those between a
    `::stop-commands::TOKEN` and its `::TOKEN::`."""
    lines, token = [], None
    for line in stdout.splitlines():
        if token is not None:
            if line == f"::{token}::":
                token = None
            continue
        if match := re.fullmatch(r"::stop-commands::(\w+)", line):
            token = match[1]
            continue
        lines.append(line)
    assert token is None, "a fence was left open"
    return lines


def test_forged_workflow_commands_never_start_a_line_of_shardruns_output(project):
    _project(
        project,
        {"forge.sh": FORGE},
        """
[[shard]]
name = "forge"
network = "none"
artifacts = ["/out"]
junit = "/tmp/j.xml"
command = ["sh", "/s/forge.sh"]
""",
    )
    for github in (True, False):
        env = {"GITHUB_ACTIONS": "true" if github else "false"}
        result = project.shardrun("run", "--plain", env=env)

        assert result.returncode == 1, result.stdout + result.stderr
        assert "\x1b" not in result.stdout and "\x1b" not in result.stderr
        commands = [line for line in _outside_fences(result.stdout) if line.startswith("::")]
        if not github:
            assert commands == []
            continue
        # Only shardrun's own: the log group and its annotations, with the test's text
        # escaped inside them (a line break as %0A, never a new line).
        for line in commands:
            assert line.startswith(("::group::forge", "::endgroup::", "::error title=")), line
        assert commands.count("::endgroup::") == 1
        assert any("x%0A%3A%3Aadd-mask%3A%3Ay" in line for line in commands)  # the case name
    show = project.shardrun("show", "forge", env={"GITHUB_ACTIONS": "true"})
    assert show.returncode == 0
    assert [line for line in _outside_fences(show.stdout) if line.startswith("::")] == []
    assert "\x1b" not in show.stdout and "::add-mask::zz" in show.stdout  # shown, fenced


def test_a_secret_reaches_no_file_and_no_output_however_the_test_writes_it(project):
    _project(
        project,
        {"leak.sh": LEAK},
        """
[[shard]]
name = "leak"
network = "none"
secret-env = ["TOKEN"]
artifacts = ["/out"]
junit = "/tmp/j.xml"
command = ["sh", "/s/leak.sh"]
""",
    )
    env = {"TOKEN": SECRET, "GITHUB_ACTIONS": "true"}
    summary = project.root / "step-summary.md"
    result = project.shardrun(
        "run",
        "--plain",
        "--junit",
        str(project.root / "copy.xml"),
        env={**env, "GITHUB_STEP_SUMMARY": str(summary)},
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert SECRET[:8] + "noise" not in result.stdout  # nor its halves, joined in the log
    written = [p for p in project.root.rglob("*") if p.is_file() and p.suffix != ".sh"]
    leaks = [str(p) for p in written if SECRET.encode() in p.read_bytes()]
    assert leaks == []
    run = project.report()
    shard = run["shards"][0]
    assert [c["name"] for c in shard["test_cases"]] == ["t_***"]  # the JUnit file was read
    # Masked whole, whichever stream's bytes the engine sent first.
    assert Path(shard["log"]).read_text().replace("\n", "") in ("noise***", "***noise")
    artifact = next(Path(p) for p in shard["artifacts"] if p.endswith("env.txt"))
    assert artifact.read_text() == "token=***\n"


# Runs the CLI as its only child, then prints the largest resident size among its
# children (the CLI's own process, which reads every JUnit file), in KB.
MEASURED = """
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "shardrun", *sys.argv[1:]])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(done.returncode)
"""


def _run_measured(project, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, *args],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done, int(done.stderr.split()[-1]) / 1024  # MB


HUGE = r"""
# JUnit files that cost seconds and gigabytes to read whole: a 200 MB attribute, a
# million cases (54 MB), and a file of 2 GB that is all holes; then one within the limit,
# with a 15 MB attribute and 200,000 cases.
mode=$1
case $mode in
attr)
  { printf '<testsuite><testcase name="a"><failure message="'
    head -c 200000000 /dev/zero | tr '\0' a
    printf '"/></testcase></testsuite>'; } > /tmp/j.xml ;;
sparse) truncate -s 2G /tmp/j.xml ;;
million)
  { printf '<testsuite>'
    seq 1 1000000 | sed 's/.*/<testcase classname="c" name="n&" time="0.001"\/>/'
    printf '</testsuite>'; } > /tmp/j.xml ;;
within)
  { printf '<testsuite><testcase name="a"><failure message="'
    head -c 15000000 /dev/zero | tr '\0' a
    printf '"/></testcase>'
    i=0; while [ $i -lt 200 ]; do
      seq 1 1000 | sed 's/.*/<testcase classname="c" name="n&" time="0.001"\/>/'
      i=$((i + 1)); done
    printf '</testsuite>'; } > /tmp/j.xml ;;
esac
exit 1
"""


def test_a_pathological_junit_file_costs_seconds_and_little_memory(project):
    shards = "".join(
        f"""
[[shard]]
name = "{mode}"
network = "none"
junit = "/tmp/j.xml"
timeout = "2m"
command = ["sh", "/s/huge.sh", "{mode}"]
"""
        for mode in ("attr", "sparse", "million", "within")
    )
    _project(project, {"huge.sh": HUGE}, shards)
    started = time.monotonic()
    result, rss_mb = _run_measured(project, "run", "--plain", "--jobs", "1")
    took = time.monotonic() - started  # the 200 MB attribute alone used to take 198 s

    assert result.returncode == 1, result.stdout + result.stderr
    run = project.report()
    shards = {s["name"]: s for s in run["shards"]}
    for name in ("attr", "sparse", "million"):
        assert shards[name]["test_cases"] is None
        assert "not read: over the 32 MB limit" in shards[name]["artifacts_note"]
    within = shards["within"]
    assert len(within["test_cases"]) == 10_001  # all failing cases, 10,000 passing ones
    assert "190000 test cases past the first 10000 not kept" in within["artifacts_note"]
    assert "long names, messages or failure texts were cut" in within["artifacts_note"]
    assert took < 60, took
    assert rss_mb < 200, rss_mb  # a million cases took 1.85 GB
    assert os.path.getsize(Path(within["junit"])) < 2_000_000


def test_a_20_gb_sparse_artifact_is_not_read_and_costs_no_time(project):
    _project(
        project,
        {"none.sh": ""},
        """
[[shard]]
name = "sparse"
network = "none"
timeout = "10s"
artifacts = ["/out"]
artifacts-max = "1m"
command = ["sh", "-c", "mkdir -p /out && truncate -s 20G /out/big && echo small > /out/zz && ln -s /etc/passwd /out/link && mkfifo /out/fifo; exit 1"]
""",
    )
    started = time.monotonic()
    result = project.shardrun("run", "--plain", timeout=120)
    took = time.monotonic() - started

    assert result.returncode == 1, result.stdout + result.stderr
    assert took < 30, took  # it used to read all 20 GB: 102 s
    shard = project.report()["shards"][0]
    left_out = shard["artifacts_left_out"]
    assert any(
        item.startswith("/out/big: 21474836480 bytes, over artifacts-max") for item in left_out
    )
    assert any(item == "/out/link: a symbolic link" for item in left_out) or any(
        "/out/big" in item and "not read" in item for item in left_out
    )
    assert " left out: " in result.stdout  # "2 artifacts left out: ...", or 1 artifact
