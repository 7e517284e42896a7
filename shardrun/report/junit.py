"""The run's junit.xml: one testsuite per shard, holding the test cases of the JUnit file
the shard wrote (its `junit` option), or else one testcase for the shard as a whole.

A case that failed in an earlier attempt of its shard (`--retries`) and passed in the last
is flaky: it passes, with a `flakyFailure` child, as Maven Surefire and
pytest-rerunfailures write it. Pure: files in, XML text out.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shardrun.model.results import FAILED_TESTS, ShardResult, Status
from shardrun.state import layout

_BAD = ("failure", "error")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Test logs carry colour codes and control bytes, which XML 1.0 forbids outright."""
    return _NOT_XML.sub("", _ANSI.sub("", text))


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    time: float
    outcome: str  # "passed", "failure", "error" or "skipped"
    message: str = ""
    text: str = ""
    file: str = ""  # the `file` attribute, where the runner writes one

    @property
    def key(self) -> tuple[str, str]:
        return self.classname, self.name

    @property
    def failed(self) -> bool:
        return self.outcome in _BAD


def read_cases(path: str | Path | None) -> list[Case] | None:
    """The test cases of a JUnit file (`testsuites` or `testsuite` at its root, suites
    nested or not); None if there is no file or it is not JUnit XML."""
    if not path:
        return None
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    if root.tag not in ("testsuites", "testsuite"):
        return None
    cases = []
    for node in root.iter("testcase"):
        outcome, message, text = "passed", "", ""
        for tag in ("failure", "error", "skipped"):
            found = node.find(tag)
            if found is not None:
                outcome, message, text = tag, found.get("message", ""), found.text or ""
                break
        try:
            seconds = float(node.get("time") or 0)
        except ValueError:
            seconds = 0.0
        cases.append(
            Case(
                node.get("classname", ""),
                node.get("name", ""),
                seconds,
                outcome,
                message,
                text,
                node.get("file", ""),
            )
        )
    return cases


def write_passed(path: Path, suite: str, cases: Sequence[Case]) -> None:
    """A JUnit file of cases that passed or were skipped: a reused shard's, carried over
    from the run it passed in, so the reports of the run that reused it list them."""
    root = ET.Element("testsuite", name=xml_safe(suite), tests=str(len(cases)))
    for case in cases:
        node = ET.SubElement(
            root,
            "testcase",
            classname=xml_safe(case.classname),
            name=xml_safe(case.name),
            time=f"{case.time:.3f}",
        )
        if case.outcome == "skipped":
            ET.SubElement(node, "skipped")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def attempt_files(result: ShardResult) -> list[str | None]:
    """The JUnit files of each attempt of the shard, first to last: an attempt's files
    are in <run>/<shard>[.<attempt>]/ (see execute.run_shard)."""
    if not result.junit:
        return []
    last = Path(result.junit)
    run_dir = last.parent.parent
    files: list[str | None] = []
    for attempt in range(1, result.attempt):
        folder = layout.shard_folder(run_dir, result.name, attempt)
        candidate = folder / last.name
        files.append(str(candidate) if candidate.is_file() else None)
    return [*files, str(last)]


@functools.lru_cache(maxsize=4096)
def flaky_and_cases(result: ShardResult) -> tuple[list[Case], dict[tuple[str, str], Case]] | None:
    """The last attempt's cases and, by case, the earlier failure of each flaky one; None
    when the shard left no readable JUnit file. Read once per result: every report, the
    summary and the annotations ask (callers must not change what it returns)."""
    files = attempt_files(result)
    cases = read_cases(files[-1]) if files else None
    if cases is None:
        return None
    earlier: dict[tuple[str, str], Case] = {}
    for path in files[:-1]:
        for case in read_cases(path) or []:
            if case.failed:
                earlier.setdefault(case.key, case)
    flaky = {c.key: earlier[c.key] for c in cases if c.outcome == "passed" and c.key in earlier}
    return cases, flaky


def file_seconds(result: ShardResult, files: Sequence[str]) -> dict[str, float] | None:
    """Seconds per file of a split shard, from the test cases of its JUnit file: by their
    `file` attribute, else by the classname as pytest writes it (tests.unit.test_x[.Class]
    for tests/unit/test_x.py). Only the cases' own time: the shard's time outside them
    (start-up, collection, the setup of each directory) is the group's, not its files'.
    None without a usable JUnit file."""
    found = flaky_and_cases(result)
    if found is None or not result.duration:
        return None
    by_module = {f.removesuffix(".py").replace("/", "."): f for f in files}
    seconds: dict[str, float] = {}
    for case in found[0]:
        name = case.file if case.file in files else _module_file(case.classname, by_module)
        if name:
            seconds[name] = seconds.get(name, 0.0) + case.time
    if not seconds or sum(seconds.values()) <= 0:
        return None
    return seconds


def _module_file(classname: str, by_module: Mapping[str, str]) -> str | None:
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):  # the longest module prefix: tests.test_x.TestY
        if (found := by_module.get(".".join(parts[:end]))) is not None:
            return found
    return None


def failing_cases(result: ShardResult, limit: int = 10) -> tuple[list[str], int]:
    """Up to `limit` failing test cases of the shard's last attempt, and how many in all."""
    found = flaky_and_cases(result)
    if found is None:
        return [], 0
    failing = [f"{c.classname}::{c.name}" if c.classname else c.name for c in found[0] if c.failed]
    return failing[:limit], len(failing)


def flaky_count(results: Sequence[ShardResult]) -> int:
    return sum(len(found[1]) for r in results if (found := flaky_and_cases(r)) is not None)


def to_xml(
    project: str, results: Sequence[ShardResult], wall: float, tail: Callable[[str | None], str]
) -> str:
    """The run's JUnit XML; `tail(log_path)` gives a failing shard's log tail."""
    root = ET.Element("testsuites", name=project, time=f"{wall:.3f}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for result in results:
        suite = _suite(result, tail)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _suite(result: ShardResult, tail: Callable[[str | None], str]) -> ET.Element:
    suite = ET.Element("testsuite", name=result.name, time=f"{result.duration or 0:.3f}")
    if result.worker:
        suite.set("hostname", result.worker)
    found = flaky_and_cases(result)
    if found is None:
        _shard_case(suite, result, tail)
    else:
        cases, flaky = found
        for case in cases:
            _case(suite, result.name, case, flaky.get(case.key))
        if result.status is not Status.PASS and not any(c.failed for c in cases):
            _shard_case(suite, result, tail)  # failed outside its tests: say so as a case
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for node in suite.iter("testcase"):
        counts["tests"] += 1
        for tag, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            counts[key] += node.find(tag) is not None
    for key, value in counts.items():
        suite.set(key, str(value))
    return suite


def _case(suite: ET.Element, shard: str, case: Case, flaky: Case | None) -> None:
    node = ET.SubElement(
        suite,
        "testcase",
        classname=case.classname or shard,
        name=case.name,
        time=f"{case.time:.3f}",
    )
    if case.outcome != "passed":
        child = ET.SubElement(node, case.outcome, message=xml_safe(case.message))
        child.text = xml_safe(case.text) or None
    elif flaky is not None:
        child = ET.SubElement(node, "flakyFailure", message=xml_safe(flaky.message))
        child.text = xml_safe(flaky.text) or None


def _shard_case(suite: ET.Element, result: ShardResult, tail: Callable[[str | None], str]) -> None:
    """The shard as one testcase: its status, and a failing one's log tail."""
    case = ET.SubElement(
        suite,
        "testcase",
        classname=result.name,
        name=result.name,
        time=f"{result.duration or 0:.3f}",
    )
    if result.status is Status.PASS:
        return
    if result.status is Status.SKIPPED:
        ET.SubElement(case, "skipped", message=xml_safe(result.detail))
        return
    tag = "failure" if result.status in FAILED_TESTS else "error"
    message = result.detail or f"exit code {result.exit_code}"
    node = ET.SubElement(case, tag, message=xml_safe(f"{result.status.value}: {message}"))
    node.text = tail(result.log_path)
