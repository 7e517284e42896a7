"""shardrun.report: JSON and JUnit files, the summary rows and the totals line."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from shardrun.model.results import ShardResult, Status
from shardrun.report import write as report
from shardrun.report.github import github_annotations
from shardrun.report.json_report import SCHEMA, to_json
from shardrun.report.markdown import to_markdown
from shardrun.report.summary import RunSummary, WorkerReport, lost_line, summary_rows, totals_line
from shardrun.ui.summary import compression_lines


def result(name: str, status: Status, **kw) -> ShardResult:
    unset = {
        "exit_code": None,
        "started": None,
        "finished": None,
        "worker": None,
        "slot": None,
        "log_path": None,
    }
    return ShardResult(name=name, status=status, **{**unset, **kw})


def ran(name: str, status: Status, code: int | None, took: float, **kw) -> ShardResult:
    return result(
        name,
        status,
        exit_code=code,
        started=1000.0,
        finished=1000.0 + took,
        worker="local",
        slot=1,
        **kw,
    )


def summary(*results: ShardResult, **kw) -> RunSummary:
    run = {
        "run_id": "20240101-120000-ab12",
        "project": "demo",
        "image_id": "sha256:abc",
        "started": 1000.0,
        "finished": 1042.0,
    }
    return RunSummary(results=results, **{**run, **kw})


@pytest.fixture
def mixed(tmp_path: Path) -> RunSummary:
    log = tmp_path / "unit-2.log"
    log.write_text("".join(f"line {i}\n" for i in range(1, 81)) + "E   assert 1 == 2\n")
    return summary(
        ran("unit-1", Status.PASS, 0, 12.34, log_path=str(tmp_path / "unit-1.log")),
        ran("unit-2", Status.FAIL, 1, 30.0, log_path=str(log)),
        ran("slow", Status.TIMEOUT, None, 40.0, detail="killed after the 40s timeout"),
        result("docs", Status.ERROR, detail="could not create the container: no such image"),
        result("lint", Status.NOT_RUN, detail="no worker was left to run it"),
        workers=(
            WorkerReport("local", "unix:///var/run/docker.sock", 2, load="none"),
            WorkerReport("remote", "ssh://ci@box", 4, lost="lost while running: EOF"),
        ),
    )


# --- JSON ----------------------------------------------------------------------------------


def test_to_json_has_the_run_and_every_shard(mixed: RunSummary):
    data = to_json(mixed)
    assert {k: v for k, v in data.items() if k != "shards"} == {
        "schema": SCHEMA,
        "schema_minor": 1,
        "run_id": "20240101-120000-ab12",
        "project": "demo",
        "image_id": "sha256:abc",
        "started": 1000.0,
        "finished": 1042.0,
        "exit_code": 4,
        "interrupted": False,
        "error": "",
        "lost_workers": ["remote"],
        "lost_required_workers": [],
        "partition": None,
        "partitions": [],
        "phases": {
            "build": None,
            "save": None,
            "distribution": [
                {
                    "worker": "local",
                    "mode": "none",
                    "sent": 0,
                    "codec": "none",
                    "wire": 0,
                    "rate": 0,
                    "started": None,
                    "seconds": 0.0,
                }
            ],
            "compression": [],
        },
        "flaky": 0,
        "workers": [
            {
                "name": "local",
                "url": "unix:///var/run/docker.sock",
                "slots": 2,
                "lost": "",
                "load": "none",
                "sent": 0,
                "full_size": 0,
                "load_seconds": 0.0,
                "required": False,
                "load_started": None,
                "codec": "none",
                "wire": 0,
            },
            {
                "name": "remote",
                "url": "ssh://ci@box",
                "slots": 4,
                "lost": "lost while running: EOF",
                "load": "",
                "sent": 0,
                "full_size": 0,
                "load_seconds": 0.0,
                "required": False,
                "load_started": None,
                "codec": "none",
                "wire": 0,
            },
        ],
    }
    assert [s["name"] for s in data["shards"]] == ["unit-1", "unit-2", "slow", "docs", "lint"]
    assert data["shards"][1] == {
        "name": "unit-2",
        "status": "FAIL",
        "exit_code": 1,
        "started": 1000.0,
        "finished": 1030.0,
        "duration": 30.0,
        "worker": "local",
        "slot": 1,
        "attempt": 1,
        "log": mixed.results[1].log_path,
        "detail": "",
        "artifacts": [],
        "artifacts_note": "",
        "artifacts_left_out": [],
        "junit": None,
        "image": None,
        "options": None,
        "test_cases": None,
        "kept_container": None,
        "reused_from": None,
        "reuse_key": None,
    }
    assert data["shards"][4]["status"] == "NOT RUN"
    assert data["shards"][4]["duration"] is None
    json.dumps(data)  # serialisable as is


def test_to_json_gives_each_compressed_part_and_the_summary_a_line_a_codec():
    parts = (
        {"archive": "abc.piece0-1.tar", "layer": "sha256:1", "codec": "gzip",
         "raw": 280_000_000, "compressed": 137_000_000, "seconds": 0.8, "cpu": 0.96},
        {"archive": "abc.oci1.tar", "layer": "sha256:2", "codec": "gzip",
         "raw": 175_000_000, "compressed": 75_300_000, "seconds": 0.7, "cpu": 0.62},
        {"archive": "abc.oci1.tar", "layer": "", "codec": "gzip",
         "raw": 40_000, "compressed": 5_000, "seconds": 0.01, "cpu": 0.01},
    )  # fmt: skip
    run = summary(compression=parts)
    assert to_json(run)["phases"]["compression"] == list(parts)
    assert compression_lines(run) == [
        "compressed for the workers, each layer once: 455.0 MB as 212.3 MB gzip, 1.6s of CPU"
    ]
    assert compression_lines(summary()) == []


def test_to_json_exit_code_of_an_interrupted_run():
    assert to_json(summary(interrupted=True))["exit_code"] == 130


def _with_workers(*workers: WorkerReport, interrupted: bool = False) -> RunSummary:
    passed = summary(result("a", Status.PASS), interrupted=interrupted)
    return replace(passed, workers=workers)


def test_a_lost_worker_is_named_at_the_end_but_fails_the_run_only_if_required():
    served = WorkerReport("local", "unix://", 2, load="none")
    lost = WorkerReport("w3", "tcp://w3:2375", 1, lost="could not get the image there")

    optional = _with_workers(served, lost)
    assert optional.exit_code == 0
    assert lost_line(optional) == "1 of 2 workers lost: w3: could not get the image there"

    required = _with_workers(served, replace(lost, required=True))
    assert required.exit_code == 4 and required.lost_required == ("w3",)
    assert lost_line(required) == (
        "1 of 2 workers lost: w3 (required): could not get the image there"
    )
    assert to_json(required)["lost_required_workers"] == ["w3"]
    assert "1 of 2 workers lost: w3 (required)" in to_markdown(required)
    # Ctrl-C is what the user did: it stays 130.
    assert _with_workers(served, replace(lost, required=True), interrupted=True).exit_code == 130
    assert lost_line(_with_workers(served)) == ""


# --- JUnit ---------------------------------------------------------------------------------


def test_to_junit_is_valid_xml_with_counts(mixed: RunSummary):
    text = report.to_junit(mixed)
    assert text.startswith("<?xml")
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    assert root.attrib == {
        "name": "demo",
        "tests": "5",
        "failures": "2",
        "errors": "2",
        "skipped": "0",
        "time": "42.000",
    }
    # A shard without its own JUnit file is one suite of one case, named after it.
    assert [s.get("name") for s in root.findall("testsuite")] == [
        "unit-1",
        "unit-2",
        "slow",
        "docs",
        "lint",
    ]
    cases = list(root.iter("testcase"))
    assert [(c.get("name"), c.get("classname"), c.get("time")) for c in cases] == [
        ("unit-1", "unit-1", "12.340"),
        ("unit-2", "unit-2", "30.000"),
        ("slow", "slow", "40.000"),
        ("docs", "docs", "0.000"),
        ("lint", "lint", "0.000"),
    ]
    assert [[child.tag for child in c] for c in cases] == [
        [],
        ["failure"],
        ["failure"],
        ["error"],
        ["error"],
    ]


def test_to_junit_failure_has_the_message_and_the_log_tail(mixed: RunSummary):
    case = list(ET.fromstring(report.to_junit(mixed)).iter("testcase"))[1]
    failure = case.find("failure")
    assert failure.get("message") == "FAIL: exit code 1"
    lines = failure.text.splitlines()
    assert len(lines) == 50  # the tail, not the whole log
    assert lines[0] == "line 32"
    assert lines[-1] == "E   assert 1 == 2"


def test_to_junit_messages_use_the_detail_and_tolerate_a_missing_log(mixed: RunSummary):
    cases = list(ET.fromstring(report.to_junit(mixed)).iter("testcase"))
    assert cases[2].find("failure").get("message") == "TIMEOUT: killed after the 40s timeout"
    assert cases[3].find("error").get("message") == (
        "ERROR: could not create the container: no such image"
    )
    assert cases[4].find("error").get("message") == "NOT RUN: no worker was left to run it"
    assert not cases[3].find("error").text  # no log path
    assert cases[0].find("failure") is None  # unit-1 passed; its log file does not exist


def test_to_junit_counts_cancelled_as_an_error():
    suite = ET.fromstring(report.to_junit(summary(result("a", Status.CANCELLED))))
    assert (suite.get("failures"), suite.get("errors")) == ("0", "1")


def test_to_junit_stays_valid_xml_when_the_log_has_ansi_colours(tmp_path: Path):
    log = tmp_path / "unit.log"
    log.write_text("\x1b[31mFAILED\x1b[0m tests/test_x.py::test_y - assert 0\n")
    text = report.to_junit(summary(ran("unit", Status.FAIL, 1, 1.0, log_path=str(log))))
    failure = ET.fromstring(text).find("testsuite/testcase/failure")
    assert "FAILED tests/test_x.py::test_y" in failure.text


# --- write ---------------------------------------------------------------------------------


def test_write_writes_every_report_and_no_temp_files(mixed: RunSummary, tmp_path: Path):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "report.json").write_text("stale")
    paths = report.write(mixed, run_dir)
    assert paths == [run_dir / n for n in ("report.json", "junit.xml", "summary.md", "report.html")]
    assert sorted(os.listdir(run_dir)) == ["junit.xml", "report.html", "report.json", "summary.md"]
    assert json.loads(paths[0].read_text()) == to_json(mixed)
    assert ET.parse(paths[1]).getroot().get("tests") == "5"
    assert paths[2].read_text() == to_markdown(mixed)
    assert paths[3].read_text().startswith("<!doctype html>")


def test_markdown_summary_has_verdict_table_lost_workers_and_failing_tails(mixed: RunSummary):
    text = to_markdown(mixed)
    lines = text.splitlines()
    assert lines[0] == "## shardrun demo: failed (exit 4)"
    assert "| unit-2 | FAIL | 30.0s | 1 | local/1 |" in text
    assert "Worker remote was lost: lost while running: EOF" in text
    # the failing shard's log tail, the passing one's not
    assert "<details><summary>unit-2: FAIL, last lines</summary>" in text
    assert "E   assert 1 == 2" in text
    assert "unit-1: PASS" not in text
    assert "\nline 52\n" in text and "\nline 51\n" not in text  # the last 30 lines only


def test_markdown_cells_escape_pipes(tmp_path: Path):
    one = summary(result("a|b", Status.ERROR, detail="could not create: x | y"))
    assert "| a\\|b | ERROR |" in to_markdown(one)


def test_step_summary_is_appended_not_replaced(mixed: RunSummary, tmp_path: Path):
    step = tmp_path / "step.md"
    step.write_text("earlier step\n")
    report.write(mixed, tmp_path, step_summary=step)
    assert step.read_text() == "earlier step\n" + to_markdown(mixed)


# --- summary table and totals --------------------------------------------------------------


def test_summary_rows(mixed: RunSummary):
    rows = summary_rows(mixed.results)
    assert rows == [
        ("unit-1", "PASS", "12.3s", "0", "local/1", mixed.results[0].log_path),
        ("unit-2", "FAIL", "30.0s", "1", "local/1", mixed.results[1].log_path),
        ("slow", "TIMEOUT", "40.0s", "-", "local/1", "killed after the 40s timeout"),
        ("docs", "ERROR", "-", "-", "-", "could not create the container: no such image"),
        ("lint", "NOT RUN", "-", "-", "-", "no worker was left to run it"),
    ]


def test_totals_line_counts_in_status_order(mixed: RunSummary):
    assert totals_line(mixed) == (
        "5 shards: 1 pass, 1 fail, 1 timeout, 1 error, 1 not run in 42.0s"
    )


def test_totals_line_of_an_empty_run():
    assert totals_line(summary(finished=1000.0)) == "0 shards: none run in 0.0s"


def test_summary_exit_code_and_counts(mixed: RunSummary):
    assert mixed.exit_code == 4
    assert mixed.counts[Status.FAIL] == 1 and mixed.counts[Status.CANCELLED] == 0


def test_github_annotations_give_one_error_per_failed_shard_and_group_its_log(mixed):
    lines = github_annotations(mixed)
    errors = [line for line in lines if line.startswith("::error ")]
    assert errors == [
        "::error title=shard unit-2 FAIL::exit code 1",
        "::error title=shard slow TIMEOUT::killed after the 40s timeout",
        "::error title=shard docs ERROR::could not create the container: no such image",
        "::error title=shard lint NOT RUN::no worker was left to run it",
    ]
    start = lines.index("::group::unit-2: FAIL, last lines")
    token = lines[start + 1].removeprefix("::stop-commands::")
    assert len(token) == 32  # random: a test cannot guess it to end the fence
    assert lines[start + 2 : start + 4] == ["line 52", "line 53"]
    end = lines.index("::endgroup::", start)
    assert lines[end - 1] == f"::{token}::"
    assert lines[end - 2] == "E   assert 1 == 2"
