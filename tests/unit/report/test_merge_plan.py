"""shardrun.report.merge with the build's plan (`merge --plan`, issue 27): the plan says
which partitions must report and with which shards, a partition it gave none may be
absent, its reused shards join the merged run, and each shard's reused_from and
reuse_key are read from a partition's report as strictly as its other fields."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from shardrun.model.errors import InfraError
from shardrun.model.results import Status
from shardrun.report import junit, merge
from shardrun.report.json_report import to_json
from shardrun.report.summary import totals_line
from shardrun.report.write import to_junit
from shardrun.run import reuse
from shardrun.state.results_record import Case, Passed
from tests.unit.report.test_merge import _take_junit, job

KEY = "sha256:" + "1f" * 32


def planned(*shares: list[str], digest: str = "p1") -> merge.Planned:
    return merge.Planned("image.plan.json", digest, tuple(frozenset(s) for s in shares))


def reports(root: Path, plan: merge.Planned | None) -> list[merge.Partition]:
    return merge.read(merge.find([str(root)], missing_ok=plan is not None and plan.idle), plan)


def passed(shard: str, *cases: str) -> Passed:
    return Passed(
        key=f"sha256:{sum(map(ord, shard)):064x}",
        shard=shard,
        run="20260101-000000-earlier",
        finished=1_700_000_000.0,
        duration=42.0,
        image="sha256:" + "ee" * 32,
        cases=tuple(Case("tests.test_r", c, 0.5) for c in cases),
    )


# ---- which partitions must report ------------------------------------------------------


def test_a_partition_the_plan_gave_no_shards_need_not_report(tmp_path: Path):
    job(tmp_path, "job1", 1, ["a"])
    job(tmp_path, "job2", 2, ["b"])
    parts = reports(tmp_path, planned(["a"], ["b"], []))
    assert [p.index for p in parts] == [1, 2]
    # Without the plan nothing says partition 3 had no shards: it is a lost job.
    with pytest.raises(InfraError, match="partition 3 of 3 never reported"):
        reports(tmp_path, None)


def test_a_partition_the_plan_gave_shards_must_still_report(tmp_path: Path):
    job(tmp_path, "job1", 1, ["a"])
    with pytest.raises(InfraError, match="partition 2 of 3 never reported"):
        reports(tmp_path, planned(["a"], ["b"], []))


def test_no_input_at_all_is_a_merge_of_nothing_only_when_no_partition_had_shards(tmp_path):
    gone = tmp_path / "partitions"  # what download-artifact leaves when nothing uploaded
    assert merge.read(merge.find([str(gone)], missing_ok=True), planned([], [])) == []
    with pytest.raises(InfraError, match="partition 2 of 2 never reported"):
        merge.read(merge.find([str(gone)], missing_ok=True), planned([], ["b"]))
    with pytest.raises(InfraError, match="no such file or folder"):
        merge.find([str(gone)])
    gone.mkdir()  # a folder holding no partition: the same
    assert merge.read(merge.find([str(gone)]), planned([], [])) == []
    with pytest.raises(InfraError, match="no partition reports found"):
        merge.read(merge.find([str(gone)]))


@pytest.mark.parametrize(
    "digest, shares",
    [("p2", (["a"], ["b"], [])), ("p1", (["a"], ["b"]))],
    ids=["another-digest", "another-total"],
)
def test_a_report_of_another_plan_than_the_one_given_is_refused(tmp_path, digest, shares):
    folder = job(tmp_path, "job1", 1, ["a"])
    job(tmp_path, "job2", 2, ["b"])
    with pytest.raises(InfraError) as caught:
        reports(tmp_path, planned(*shares, digest=digest))
    text = str(caught.value)
    assert "of another plan than image.plan.json" in text and "\n" not in text
    assert str(folder / "report.json") in text


@pytest.mark.parametrize(
    "jobs, shares, message",
    [
        ((["a"], ["b"]), (["a", "x"], ["b"], []), 'partition 1 did not report shard "x", which'),
        ((["a"], ["b"]), (["a"], ["c"], []), 'partition 2 reported shard "b", which image.plan'),
        ((["a"], ["b", "r"]), (["a"], ["b"], []), 'partition 2 reported shard "r", which'),
    ],
    ids=["lacks-one", "another-share", "one-more"],
)
def test_a_partition_must_report_exactly_the_shards_the_plan_gave_it(
    tmp_path, jobs, shares, message
):
    for k, names in enumerate(jobs, 1):
        job(tmp_path, f"job{k}", k, names)
    with pytest.raises(InfraError, match=message):
        reports(tmp_path, planned(*shares))


# ---- reused_from and reuse_key of a partition's report -----------------------------------


def test_a_partitions_reused_from_and_reuse_key_reach_the_merged_results(tmp_path: Path):
    def reused(report):
        report["shards"][0].update(reused_from="20251231-235959-abc", reuse_key=KEY)
        report["shards"][1].update(reuse_key=KEY.replace("1f", "2e"))

    job(tmp_path / "in", "job1", 1, ["a", "b", "c"], total=1, change=reused)
    results = merge.merge(
        reports(tmp_path / "in", None), "m", tmp_path / "out", _take_junit
    ).summary.results
    assert [(r.reused_from, r.reuse_key) for r in results] == [
        ("20251231-235959-abc", KEY),
        (None, KEY.replace("1f", "2e")),
        (None, None),  # a report of schema 1.0 has neither
    ]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("reuse_key", "sha256:" + "AB" * 32, "reuse_key is 'sha256:ABAB"),
        ("reuse_key", KEY + "\n", 'not "sha256:" and 64 hex digits'),
        ("reuse_key", KEY[:-1], "shards[1].reuse_key is 'sha256:1f1f"),
        ("reuse_key", 5, "shards[1].reuse_key is 5, not"),
        ("reuse_key", ["sha256:"], "shards[1].reuse_key is ['sha256:']"),
        ("reused_from", "../../etc", "shards[1].reused_from is '../../etc', not a run ID"),
        ("reused_from", "x" * 101, "shards[1].reused_from is 'xxxx"),
        ("reused_from", True, "shards[1].reused_from is True, not a run ID"),
        ("reused_from", "run\n::error::x", "reused_from is 'run\\n::error::x', not a run ID"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 16 else "",
)
def test_a_hostile_reuse_field_refuses_the_report_in_one_line(tmp_path, field, value, message):
    def hostile(report):
        report["shards"][0][field] = value

    folder = job(tmp_path, "job1", 1, ["a"], total=1, change=hostile)
    with pytest.raises(InfraError) as caught:
        reports(tmp_path, None)
    text = str(caught.value)
    assert "\n" not in text and str(folder / "report.json") in text
    assert message in text, text


def test_a_shard_reused_but_not_passed_refuses_the_report(tmp_path: Path):
    def failed(report):
        report["shards"][0].update(status="FAIL", reused_from="20251231-235959-abc")

    job(tmp_path, "job1", 1, ["a"], total=1, change=failed)
    with pytest.raises(InfraError, match="its status is FAIL: only a pass is reused"):
        reports(tmp_path, None)


# ---- the plan's reused shards in the merged run -----------------------------------------


def _settled(run_dir: Path, *entries: Passed) -> tuple:
    folder = run_dir / merge.REUSED
    folder.mkdir(parents=True)
    return tuple(reuse.settled(p.shard, p, folder) for p in entries)


def test_the_plans_reused_shards_are_in_every_report_with_their_cases(tmp_path: Path):
    job(tmp_path / "in", "job1", 1, ["a"], total=2)
    out = tmp_path / "out"
    reused = _settled(out, passed("r1", "test_one", "test_two"), passed("r2"))
    summary = merge.merge(
        reports(tmp_path / "in", planned(["a"], [])),
        "m",
        out,
        _take_junit,
        reused=reused,
        image_id="sha256:plan",
    ).summary

    assert [r.name for r in summary.results] == ["a", "r1", "r2"]
    assert summary.exit_code == 0 and summary.image_id == "sha256:plan"
    assert totals_line(summary).startswith("3 shards: 3 pass (2 reused) in 4.0s")
    shards = {s["name"]: s for s in to_json(summary)["shards"]}
    assert shards["r1"]["reused_from"] == "20260101-000000-earlier"
    assert shards["r1"]["reuse_key"] == passed("r1").key
    assert [c["name"] for c in shards["r1"]["test_cases"]] == ["test_one", "test_two"]
    assert shards["a"]["reused_from"] is None
    suites = {s.get("name"): s for s in ET.fromstring(to_junit(summary)).iter("testsuite")}
    assert [c.get("name") for c in suites["r1"].iter("testcase")] == ["test_one", "test_two"]
    assert [c.get("name") for c in suites["a"].iter("testcase")] == ["test_a"]
    assert Path(summary.results[1].log_path).parent == out / merge.REUSED


def test_reused_shards_alone_make_a_run_when_no_partition_reported(tmp_path: Path):
    out = tmp_path / "out"
    reused = _settled(out, passed("r1", "test_one"))
    summary = merge.merge(
        reports(tmp_path / "nothing", planned([], [])),
        "m",
        out,
        _take_junit,
        reused=reused,
        image_id="sha256:plan",
        project="demo",
    ).summary
    assert [(r.name, r.status) for r in summary.results] == [("r1", Status.PASS)]
    assert (summary.project, summary.partitions, summary.exit_code) == ("demo", (), 0)
    assert summary.started == summary.finished
    assert junit.failing_cases(summary.results[0]) == ([], 0)
    assert json.loads(json.dumps(to_json(summary)))["shards"][0]["reused_from"]
