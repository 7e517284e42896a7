"""shardrun.report.merge: which sets of partition reports make one run, and which fail."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shardrun.model.errors import InfraError
from shardrun.model.results import Status
from shardrun.report import junit, merge
from shardrun.report.merge_copy import Budget
from shardrun.run.shard import junit_intake
from shardrun.run.shard.masking import Masker


def _take_junit(data, size, target):
    """The run's JUnit intake, as `shardrun merge` hands it to the merge."""
    taken = junit_intake.take_in(data, size, target, Masker(), junit_intake.JUNIT_MAX)
    return taken.path, taken.note


def job(
    root: Path,
    name: str,
    index: int,
    shards: list[str],
    total: int = 3,
    plan: str = "p1",
    change=None,
) -> Path:
    """A partition job's run folder as downloaded: its report (`change` may edit it), and
    each shard's log, JUnit file and an artifact where the run writes them."""
    folder = root / name / f"2026-{name}"
    folder.mkdir(parents=True)
    there = f"/ci/.shardrun/runs/{folder.name}"
    report = {
        "run_id": folder.name,
        "project": "demo",
        "image_id": "sha256:ab",
        "started": 1.0 + index,
        "finished": 5.0 + index,
        "exit_code": 0,
        "partition": {"index": index, "total": total, "plan": plan},
        "workers": [{"name": "local", "url": "unix://"}],
        "shards": [
            {
                "name": n,
                "status": "PASS",
                "worker": "local",
                "slot": 1,
                "log": f"{there}/{n}.log",
                "junit": f"{there}/{n}/junit.xml",
                "artifacts": [f"{there}/{n}/artifacts/cov.txt"],
            }
            for n in shards
        ],
    }
    if change:
        change(report)
    (folder / "report.json").write_text(json.dumps(report))
    for n in shards:
        (folder / f"{n}.log").write_text(f"{n} ok\n")
        (folder / n / "artifacts").mkdir(parents=True)
        (folder / n / "artifacts" / "cov.txt").write_text("91%\n")
        (folder / n / "junit.xml").write_text(
            f'<testsuites><testsuite><testcase name="test_{n}"/></testsuite></testsuites>'
        )
    return folder


def merged(root: Path, out: Path | None = None, **given):
    parts = merge.read(merge.find([str(root)]))
    return merge.merge(parts, "merged-1", out or root.parent / "out", _take_junit, **given)


def test_every_partition_once_makes_one_run_with_its_logs_copied(tmp_path: Path):
    for k, names in enumerate([["a", "b"], ["c"], ["d"]], 1):
        job(tmp_path, f"job{k}", k, names)
    parts = merge.read(merge.find([str(tmp_path / "job*")]))
    summary = merge.merge(parts, "merged-1", tmp_path / "out", _take_junit).summary
    assert junit.failing_cases(summary.results[0]) == ([], 0)
    assert [c.name for c in junit.flaky_and_cases(summary.results[3])[0]] == ["test_d"]

    assert [r.name for r in summary.results] == ["a", "b", "c", "d"]
    assert {r.worker for r in summary.results} == {"1:local", "2:local", "3:local"}
    assert (summary.started, summary.finished) == (2.0, 8.0)
    assert all(Path(r.log_path).read_text().endswith("ok\n") for r in summary.results)
    assert summary.exit_code == 0


@pytest.mark.parametrize(
    "jobs, message",
    [
        ([(1, ["a"]), (3, ["c"])], "partition 2 of 3 never reported"),
        ([(1, ["a"]), (1, ["b"]), (2, ["c"]), (3, ["d"])], "partition 1/3 reported twice"),
        ([(1, ["a"]), (2, ["a"]), (3, ["d"])], 'shard "a" ran in partitions 1 and 2'),
    ],
)
def test_a_lost_doubled_or_overlapping_partition_fails_the_merge(tmp_path, jobs, message):
    for n, (index, names) in enumerate(jobs):
        job(tmp_path, f"job{n}", index, names)
    with pytest.raises(InfraError, match=message):
        merge.read(merge.find([str(tmp_path)]))


def test_a_report_of_another_plan_fails_the_merge_naming_it(tmp_path: Path):
    job(tmp_path, "job1", 1, ["a"], total=2)
    other = job(tmp_path, "job2", 2, ["b"], total=2, plan="p2")
    with pytest.raises(InfraError, match="of another plan") as caught:
        merge.read(merge.find([str(tmp_path)]))
    assert str(other) in str(caught.value) or "job2" in str(caught.value)


def test_a_partition_that_failed_to_run_fails_the_merged_run(tmp_path: Path):
    job(tmp_path, "job1", 1, ["a"], total=1)
    report = tmp_path / "job1" / "2026-job1" / "report.json"
    data = json.loads(report.read_text())
    data["exit_code"] = 4
    report.write_text(json.dumps(data))
    parts = merge.read(merge.find([str(tmp_path)]))
    summary = merge.merge(parts, "m", tmp_path / "out", _take_junit).summary
    assert summary.exit_code == 4 and "partition 1 exited 4" in summary.error


def test_the_same_run_downloaded_twice_counts_once(tmp_path: Path):
    """An artifact upload follows the `latest` link: one run's folder arrives twice."""
    import shutil

    for k in (1, 2, 3):
        folder = job(tmp_path, f"job{k}", k, [f"s{k}"])
        shutil.copytree(folder, folder.parent / "latest")
    parts = merge.read(merge.find([str(tmp_path)]))
    assert [p.index for p in parts] == [1, 2, 3]


def test_more_jobs_than_shards_merges_the_empty_partitions_too(tmp_path: Path):
    """5 shards on 7 jobs: the plan gave jobs 6 and 7 nothing, and their reports say so."""

    def fails(report):
        report["shards"][0]["status"] = "FAIL"

    for k in range(1, 8):
        job(
            tmp_path / "in",
            f"job{k}",
            k,
            [f"s{k}"] if k <= 5 else [],
            total=7,
            change=fails if k == 4 else None,
        )
    summary = merged(tmp_path / "in").summary

    assert [r.name for r in summary.results] == ["s1", "s2", "s3", "s4", "s5"]
    assert [p["index"] for p in summary.partitions] == list(range(1, 8))
    assert summary.exit_code == 1 and summary.counts[Status.FAIL] == 1


def test_a_truly_missing_partition_is_still_never_reported(tmp_path: Path):
    for k in range(1, 7):
        job(tmp_path, f"job{k}", k, [f"s{k}"] if k <= 5 else [], total=7)
    with pytest.raises(InfraError, match="partition 7 of 7 never reported"):
        merge.read(merge.find([str(tmp_path)]))


def test_a_long_missing_list_is_cut(tmp_path: Path):
    job(tmp_path, "job1", 1, ["a"], total=1024)
    with pytest.raises(InfraError, match=r"partition 2, 3, .*, 11 and 1013 more of 1024"):
        merge.read(merge.find([str(tmp_path)]))


def _set(*keys, value):
    def change(report):
        holder = report
        for key in keys[:-1]:
            holder = holder[key]
        holder[keys[-1]] = value

    return change


def _nest(report):
    report["phases"] = "DEEP"


@pytest.mark.parametrize(
    "change, message",
    [
        (_set("partition", "index", value="abc"), "partition.index is 'abc', not a whole number"),
        (_set("partition", value={}), "partition.total is missing"),
        (
            _set("partition", "total", value=1025),
            "partition.total is 1025, not a whole number from 1 to 1024",
        ),
        (_set("partition", "index", value=True), "partition.index is True"),
        (_set("shards", 0, "attempt", value="x"), "shards[1].attempt is 'x'"),
        (_set("started", value="yesterday"), "started is 'yesterday', not a time in seconds"),
        (_set("started", value=1e300), "started is 1e+300, not a time"),
        (
            _set("shards", 0, "status", value="MAYBE"),
            "shards[1].status is 'MAYBE', not one of PASS",
        ),
        (_set("shards", 0, "status", value=["PASS"]), "shards[1].status is ['PASS']"),
        (
            _set("shards", 0, "name", value="../../etc"),
            "shards[1].name is '../../etc', not a shard name",
        ),
        (_set("shards", 0, "name", value="a" * 101), "shards[1].name is 'aaaa"),
        (_set("shards", 0, "exit_code", value=10**400), "shards[1].exit_code is 1000"),
        (_set("shards", 0, "log", value=5), "shards[1].log is 5, not a path"),
        (_set("shards", 0, "artifacts", value=["/x", 5]), r"shards\[1\].artifacts\[2\] is 5"),
        (_set("shards", value={}), "shards is {}, not a list of shards"),
        (_set("workers", 0, value="local"), "workers[1] is 'local', not a worker"),
        (_set("run_id", value="../x"), "run_id is '../x', not a run ID"),
        (_nest, "nested deeper than 32 levels"),
    ],
    ids=lambda v: "" if callable(v) else v[:24],
)
def test_a_report_of_the_wrong_shape_is_one_line_naming_the_key(tmp_path, change, message):
    folder = job(tmp_path, "job1", 1, ["a"], total=1, change=change)
    if change is _nest:
        path = folder / "report.json"
        path.write_text(path.read_text().replace('"DEEP"', "[" * 10_000 + "]" * 10_000))
    with pytest.raises(InfraError) as caught:
        merge.read(merge.find([str(tmp_path)]))
    text = str(caught.value)
    assert "\n" not in text and str(folder / "report.json") in text
    assert (message in text) if "\\" not in message else re.search(message, text), text


def test_long_texts_are_cut_and_made_one_line(tmp_path: Path):
    def long(report):
        report["shards"][0].update(detail="x" * 5_000_000 + "\n::error::", status="ERROR")
        report["workers"][0]["lost"] = "gone\n::set-env name=A::b"

    job(tmp_path / "in", "job1", 1, ["a"], total=1, change=long)
    summary = merged(tmp_path / "in").summary
    assert summary.results[0].detail == "x" * 1000 + "…"
    assert summary.workers[0].lost == "gone\\n::set-env name=A::b"


def test_paths_that_leave_the_partition_are_left_out_with_one_line(tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text("TOKEN\n")

    def outside(report):
        a, b, c = report["shards"]
        a["log"] = str(secret)
        b["log"] = f"/ci/.shardrun/runs/2026-job1/../../../..{secret}"
        c["junit"] = f"/ci/.shardrun/runs/2026-job1/{secret.name}"  # not where a run puts it
        c["artifacts"] = ["/etc/passwd"]

    folder = job(tmp_path / "in", "job1", 1, ["a", "b", "c"], total=1, change=outside)
    (folder / secret.name).write_text("<testsuites/>")
    done = merged(tmp_path / "in")

    logs = [r.log_path for r in done.summary.results]
    assert logs[:2] == [None, None] and logs[2].endswith("partition-1/c.log")
    assert done.summary.results[2].junit is None and done.summary.results[2].artifacts == ()
    assert done.summary.results[1].junit.endswith("partition-1/b/junit.xml")  # legit ones stay
    [note] = done.notes
    assert note.startswith(f"partition 1 ({folder}): not read, outside its folder or a link: ")
    assert note.endswith(f"shard \"a\": log '{secret}' (and 3 more)")


def test_an_earlier_attempts_junit_file_is_read_from_the_copy(tmp_path: Path):
    """A flaky case: failed in attempt 1, passed in attempt 2 (junit.py reads both)."""

    def retried(report):
        entry = report["shards"][0]
        entry.update(
            attempt=2,
            log=entry["log"].replace("a.log", "a.2.log"),
            junit=entry["junit"].replace("/a/", "/a.2/"),
            artifacts=[],
        )

    folder = job(tmp_path / "in", "job1", 1, ["a"], total=1, change=retried)
    (folder / "a.2.log").write_text("again\n")
    (folder / "a.2").mkdir()
    (folder / "a.2" / "junit.xml").write_text('<testsuites><testcase name="test_a"/></testsuites>')
    (folder / "a" / "junit.xml").write_text(
        '<testsuites><testcase name="test_a"><failure message="m">t</failure></testcase>'
        "</testsuites>"
    )
    result = merged(tmp_path / "in").summary.results[0]
    assert result.log_path.endswith("partition-1/a.2.log")
    assert junit.flaky_count([result]) == 1


def test_a_junit_file_the_intake_refuses_is_not_copied_raw(tmp_path: Path):
    folder = job(tmp_path / "in", "job1", 1, ["a"], total=1)
    (folder / "a" / "junit.xml").write_text('<?xml version="1.0"?><html>not junit</html>')
    result = merged(tmp_path / "in", tmp_path / "out").summary.results[0]
    assert result.junit is None and "not well-formed JUnit XML" in result.artifacts_note
    assert not (tmp_path / "out" / "partition-1" / "a" / "junit.xml").exists()


def test_what_the_reports_read_is_copied_first_within_the_budget(tmp_path: Path):
    for k in (1, 2):
        job(tmp_path / "in", f"job{k}", k, [f"s{k}"], total=2)
    # Room for the two logs and the two JUnit files (about 80 bytes each), no more.
    done = merged(tmp_path / "in", budget=Budget(size=400, files=4))
    assert all(r.log_path and r.junit for r in done.summary.results)
    assert all(r.artifacts == () for r in done.summary.results)
    # Left out: the artifacts and each partition's own report.json.
    assert done.notes[-1].startswith("not copied: 4 files (0.0 MB), over what one merge")
