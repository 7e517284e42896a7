"""Results reused by content, on the local engine: a second run with nothing changed runs
no container of a `reuse = true` shard and reports it passed from the first, its test
cases carried into junit.xml; a change to a file the image holds runs it again; a change to
a dockerignored file does not; failures and flaky passes are never reused."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from tests.engine.conftest import shards_toml

DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY src.txt /src.txt
"""
# The shard writes a JUnit file of two cases, and a line per container into a volume the
# test reads afterwards: the number of lines is the number of containers that ran it.
JUNIT = (
    "<testsuite><testcase classname='t.A' name='one' time='0.5'/>"
    "<testcase classname='t.A' name='two' time='0.25'><skipped/></testcase></testsuite>"
)
SHARDS = f"""
[defaults]
network = "none"
reuse = true
[[shard]]
name = "cached"
junit = "/tmp/junit.xml"
command = ["sh", "-c", "cat /src.txt && echo \\"{JUNIT}\\" > /tmp/junit.xml"]
[[shard]]
name = "always"
reuse = false
command = ["true"]
"""


def _reused(project) -> dict[str, str | None]:
    return {s["name"]: s["reused_from"] for s in project.report()["shards"]}


def _cases(project, run: str = "latest") -> set[tuple[str, str]]:
    tree = ET.parse(project.root / ".shardrun" / "runs" / run / "junit.xml")
    return {(c.get("classname"), c.get("name")) for c in tree.iter("testcase")}


def test_a_second_run_with_nothing_changed_runs_no_reusable_shard(project, docker_client):
    project.write("Dockerfile.test", DOCKERFILE)
    project.write("src.txt", "one\n")
    project.write(".dockerignore", "notes.txt\n")
    project.write("notes.txt", "a\n")
    project.write("shards.toml", shards_toml(project, SHARDS))

    first = project.shardrun("run", "--plain")
    assert first.returncode == 0, first.stdout + first.stderr
    first_id = project.report()["run_id"]
    assert _reused(project) == {"cached": None, "always": None}
    ran_cases = _cases(project)
    assert {("t.A", "one"), ("t.A", "two")} <= ran_cases

    project.write("notes.txt", "b\n")  # dockerignored: the image's content is the same
    second = project.shardrun("run", "--plain")
    assert second.returncode == 0, second.stdout + second.stderr
    assert _reused(project) == {"cached": first_id, "always": None}
    assert "start    cached" not in second.stdout and "start    always" in second.stdout
    assert f"PASS     cached: reused from run {first_id}" in second.stdout
    assert "2 pass (1 reused)" in second.stdout
    assert _cases(project) == ran_cases  # carried over: the JUnit report stays complete
    shard = next(s for s in project.report()["shards"] if s["name"] == "cached")
    assert shard["worker"] is None and shard["started"] is None
    assert shard["reuse_key"].startswith("sha256:")

    no_reuse = project.shardrun("run", "--plain", "--no-reuse")
    assert no_reuse.returncode == 0 and "start    cached" in no_reuse.stdout

    project.write("src.txt", "two\n")  # in the image: the shard runs again
    third = project.shardrun("run", "--plain")
    assert third.returncode == 0, third.stdout + third.stderr
    assert _reused(project) == {"cached": None, "always": None}
    assert "start    cached" in third.stdout


def test_failures_and_flaky_passes_are_not_reused(project, tmp_path):
    project.write("Dockerfile.test", DOCKERFILE)
    project.write("src.txt", "one\n")
    flaky = tmp_path / "flaky"
    flaky.mkdir()
    # Fails on its first attempt of each run, passes on its retry: flaky.
    project.write(
        "shards.toml",
        shards_toml(
            project,
            f"""
[defaults]
network = "none"
reuse = true
[[shard]]
name = "fails"
command = ["false"]
[[shard]]
name = "flaky"
volumes = ["{flaky}:/state"]
reuse = true
command = ["sh", "-c", "if [ -e /state/once ]; then rm /state/once; else touch /state/once; exit 1; fi"]
""",
        ),
    )
    for _ in range(2):
        out = project.shardrun("run", "--plain", "--retries", "1")
        assert "start    fails" in out.stdout and "start    flaky" in out.stdout, out.stdout
        assert _reused(project) == {"fails": None, "flaky": None}
    record = project.root / ".shardrun" / "results.json"
    assert not record.exists() or json.loads(record.read_text())["entries"] == {}
