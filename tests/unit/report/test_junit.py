"""shardrun.junit: shards' own JUnit files merged into the run's junit.xml, read back
with a standard parser; flaky cases after a retry."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from shardrun.model.results import ShardResult, Status
from shardrun.report import junit

PYTEST_XML = """<?xml version="1.0"?>
<testsuites><testsuite name="pytest" tests="3">
  <testcase classname="tests.test_a" name="test_ok" time="0.5"/>
  <testcase classname="tests.test_a" name="test_flaky" time="0.2">{flaky}</testcase>
  <testcase classname="tests.test_b" name="test_bad" time="1.0">{bad}</testcase>
</testsuite></testsuites>
"""
FAIL = '<failure message="assert 1 == 2">E   assert 1 == 2</failure>'


def shard_run(run: Path, name: str, attempt: int, xml: str | None) -> str | None:
    folder = run / (name if attempt == 1 else f"{name}.{attempt}")
    folder.mkdir(parents=True, exist_ok=True)
    if xml is None:
        return None
    (folder / "junit.xml").write_text(xml)
    return str(folder / "junit.xml")


def result(
    name: str,
    status: Status,
    attempt: int = 1,
    junit_path: str | None = None,
    log: str | None = None,
) -> ShardResult:
    return ShardResult(
        name=name,
        status=status,
        exit_code=0 if status is Status.PASS else 1,
        started=0.0,
        finished=2.0,
        worker="local",
        slot=1,
        log_path=log,
        attempt=attempt,
        junit=junit_path,
    )


def parse(results) -> ET.Element:
    return ET.fromstring(junit.to_xml("demo", results, 3.0, lambda log: "the log tail"))


def test_a_shards_cases_go_under_its_suite_and_a_shard_without_a_file_is_one_case(tmp_path):
    path = shard_run(tmp_path, "unit-1", 1, PYTEST_XML.format(flaky="", bad=FAIL))
    root = parse(
        [result("unit-1", Status.FAIL, junit_path=path), result("lint", Status.FAIL, log="x.log")]
    )

    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert [c.get("name") for c in suites["unit-1"].iter("testcase")] == [
        "test_ok",
        "test_flaky",
        "test_bad",
    ]
    assert suites["unit-1"].get("failures") == "1" and suites["unit-1"].get("tests") == "3"
    bad = suites["unit-1"].find("testcase[@name='test_bad']/failure")
    assert (bad.get("message"), bad.text) == ("assert 1 == 2", "E   assert 1 == 2")
    [lint] = suites["lint"].iter("testcase")
    assert lint.find("failure").text == "the log tail"
    assert (root.get("tests"), root.get("failures")) == ("4", "2")
    assert junit.failing_cases(result("unit-1", Status.FAIL, junit_path=path)) == (
        ["tests.test_b::test_bad"],
        1,
    )


def test_a_case_that_failed_then_passed_on_a_retry_is_flaky_not_a_pass_or_a_failure(tmp_path):
    shard_run(tmp_path, "unit-1", 1, PYTEST_XML.format(flaky=FAIL, bad=""))
    last = shard_run(tmp_path, "unit-1", 2, PYTEST_XML.format(flaky="", bad=""))
    final = result("unit-1", Status.PASS, attempt=2, junit_path=last)

    root = parse([final])

    flaky = root.find(".//testcase[@name='test_flaky']")
    assert [child.tag for child in flaky] == ["flakyFailure"]
    assert flaky.find("flakyFailure").get("message") == "assert 1 == 2"
    assert root.get("failures") == "0"
    assert junit.flaky_count([final]) == 1


def test_a_shard_that_failed_outside_its_tests_still_shows_as_failed(tmp_path):
    path = shard_run(tmp_path, "unit-1", 1, PYTEST_XML.format(flaky="", bad=""))
    root = parse([result("unit-1", Status.TIMEOUT, junit_path=path)])
    assert root.get("failures") == "1"
    assert root.find(".//testcase[@name='unit-1']/failure") is not None


def test_an_unreadable_file_keeps_the_single_case(tmp_path):
    path = shard_run(tmp_path, "unit-1", 1, "<not-junit")
    root = parse([result("unit-1", Status.FAIL, junit_path=path, log="x.log")])
    assert [c.get("name") for c in root.iter("testcase")] == ["unit-1"]
    assert junit.read_cases(path) is None and junit.read_cases(None) is None


def test_file_times_come_from_the_file_attribute_or_the_classname_alone(tmp_path):
    xml = """<testsuites><testsuite name="pytest">
      <testcase classname="tests.unit.test_a" name="t1" file="tests/unit/test_a.py" time="1.0"/>
      <testcase classname="tests.unit.test_a.TestX" name="t2" time="1.0"/>
      <testcase classname="tests.test_b" name="t3" time="2.0"/>
      <testcase classname="elsewhere" name="t4" time="9.0"/>
    </testsuite></testsuites>"""
    path = shard_run(tmp_path, "g-1", 1, xml)
    ran = result("g-1", Status.PASS, junit_path=path)  # 2 s long: 0 s outside its cases
    files = ["tests/unit/test_a.py", "tests/test_b.py"]
    assert junit.file_seconds(ran, files) == {"tests/unit/test_a.py": 2.0, "tests/test_b.py": 2.0}
    # 8 s in all: the 4 s outside the cases are the group's setup, not its files'.
    slower = ShardResult(
        name="g-1",
        status=Status.PASS,
        exit_code=0,
        started=0.0,
        finished=8.0,
        worker="w",
        slot=1,
        log_path=None,
        junit=path,
    )
    assert junit.file_seconds(slower, files) == {
        "tests/unit/test_a.py": 2.0,
        "tests/test_b.py": 2.0,
    }
    assert junit.file_seconds(result("g-1", Status.PASS), files) is None  # no JUnit file
