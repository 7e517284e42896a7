"""Shards' own JUnit files, written inside real containers, merged into the run's
junit.xml; a case that passes on a retry is flaky; GitHub Actions annotations."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tests.engine.conftest import shards_toml

CASE = '<testcase classname="tests.test_{m}" name="test_{n}" time="0.1">{body}</testcase>'
FAIL = '<failure message="assert 1 == 2">E assert 1 == 2</failure>'
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY junit/ /fixtures/
"""
# The wobbly shard fails its first attempt and passes its second: a named volume of its
# own remembers that it ran once.
SHARDS = """
[defaults]
network = "none"
junit = "/tmp/junit.xml"
[[shard]]
name = "broken"
command = ["sh", "-c", "cp /fixtures/bad.xml /tmp/junit.xml; exit 1"]
[[shard]]
name = "wobbly"
volumes = ["VOLUME:/state"]
command = ["sh", "-c", '''if [ -f /state/once ]; then cp /fixtures/then.xml /tmp/junit.xml;
else touch /state/once; cp /fixtures/first.xml /tmp/junit.xml; exit 1; fi''']
[[shard]]
name = "plain"
command = ["true"]
"""


def xml(*cases: str) -> str:
    return f"<testsuites><testsuite name='pytest'>{''.join(cases)}</testsuite></testsuites>"


def test_inner_cases_land_under_their_shard_and_a_retried_pass_is_flaky(project, docker_client):
    project.write("Dockerfile.test", DOCKERFILE)
    project.write(
        "junit/bad.xml",
        xml(CASE.format(m="b", n="ok", body=""), CASE.format(m="b", n="bad", body=FAIL)),
    )
    project.write("junit/first.xml", xml(CASE.format(m="a", n="flaky", body=FAIL)))
    project.write("junit/then.xml", xml(CASE.format(m="a", n="flaky", body="")))
    volume = f"{project.name}-state"
    project.write("shards.toml", shards_toml(project, SHARDS.replace("VOLUME", volume)))

    result = project.shardrun("run", "--plain", "--retries", "1", env={"GITHUB_ACTIONS": "true"})

    assert result.returncode == 1, result.stdout + result.stderr
    run_dir = Path(project.report()["shards"][0]["log"]).parent
    root = ET.parse(run_dir / "junit.xml").getroot()  # a standard parser takes it
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"broken", "wobbly", "plain"}
    assert [c.get("name") for c in suites["broken"].iter("testcase")] == ["test_ok", "test_bad"]
    assert suites["broken"].find("testcase[@name='test_bad']/failure") is not None
    [wobbly] = suites["wobbly"].iter("testcase")
    assert [child.tag for child in wobbly] == ["flakyFailure"]
    assert [c.get("name") for c in suites["plain"].iter("testcase")] == ["plain"]
    out = result.stdout
    assert "1 flaky test" in out
    assert "failing in broken: tests.test_b::test_bad" in out
    # GitHub Actions: one ::error per failing test case, the log tail in a group.
    errors = [line for line in out.splitlines() if line.startswith("::error ")]
    assert errors == ["::error title=broken%3A tests.test_b%3A%3Atest_bad::assert 1 == 2"]
    assert "::group::broken: FAIL, last lines" in out and "::endgroup::" in out
    docker_client.volumes.get(volume).remove(force=True)
