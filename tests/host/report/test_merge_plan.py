"""`shardrun merge --plan PLAN` through the real CLI (issue 27: results reused by content
across a CI matrix). The build's plan left shards out of every partition (they passed
before on the same content) and may leave partitions without shards, whose jobs GitHub
skips: the merge reports the reused shards as passed with their test cases, needs no
folder for a skipped job, refuses a report of another plan, and adds the matrix's clean
passes to this folder's .shardrun/results.json beside what that already held. No engine."""

from __future__ import annotations

import contextlib
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from shardrun.cli.app import app
from shardrun.model.shard import Shard
from shardrun.plan import plan_file
from shardrun.plan.plan_file import Plan
from shardrun.report import json_report
from shardrun.state import layout, results_record
from shardrun.state.results_record import Case, Passed
from tests.host import foreign_json
from tests.host.report.partitions import partition_run, shardrun

IMAGE = "sha256:" + "cd" * 32
EARLIER = "20260101-000000-earlier"
SHARES = (("s1", "s4"), ("s2",), ("s3",), ())  # partition 4: no shards, its job skipped
FINISHED = 1_700_000_000.0


def key_of(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")


def reused(name: str, *cases: str) -> Passed:
    return Passed(
        key=key_of(name),
        shard=name,
        run=EARLIER,
        finished=FINISHED,
        duration=30.0,
        image=IMAGE,
        cases=tuple(Case("tests.test_r", c, 0.25) for c in cases),
    )


REUSED = (reused("r1", "test_r1_a", "test_r1_b"), reused("r2"))


def make_plan(root: Path, shares=SHARES, reused_shards=REUSED) -> tuple[Plan, Path]:
    plan = Plan(
        image_id=IMAGE,
        config="sha256:" + "ef" * 32,
        partitions=tuple(tuple(Shard(name=n) for n in share) for share in shares),
        expected=tuple(1.0 for _ in shares),
        reused=tuple(reused_shards),
    )
    path = root / "image.plan.json"
    plan_file.save(plan, path)
    return plan, path


def _rewrite(folder: Path, change) -> None:
    path = folder / "report.json"
    report = json.loads(path.read_text())
    change(report)
    path.write_text(json.dumps(report))


def downloads(root: Path, plan: Plan, failing: tuple[str, ...] = (), digest: str = "") -> Path:
    """The partition jobs that had shards, as downloaded: each report names the plan and
    keys each shard as a run with `reuse = true` does."""
    into = root / "partitions"
    for k, share in enumerate(plan.partitions, 1):
        if not share:
            continue  # GitHub skipped that job: it uploaded nothing
        folder = partition_run(into, k, plan.total, [s.name for s in share], failing)

        def stamp(report: dict) -> None:
            report["partition"]["plan"] = digest or plan.digest
            for entry in report["shards"]:
                entry["reuse_key"] = key_of(entry["name"])

        _rewrite(folder, stamp)
    return into


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The merge job's checkout, its state restored from a CI cache: the record holds a
    pass of another shard, and r1's entry from the run that first passed it."""
    folder = tmp_path / "project"
    state = layout.state_dir(folder)
    state.mkdir(parents=True)
    other = Passed(key_of("old"), "old", EARLIER, FINISHED, 5.0, IMAGE)
    results_record.add(layout.results_record(state), [other, REUSED[0]])
    return folder


def _record(project: Path) -> dict[str, Passed]:
    entries, warning = results_record.load(layout.results_record(layout.state_dir(project)))
    assert warning == ""
    return entries


def _latest(project: Path) -> Path:
    return layout.latest_link(layout.state_dir(project))


def _one_line_error(done, code: int) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("shardrun: error: "), done.stderr
    return lines[0]


def test_the_reused_shards_are_in_every_report_and_the_passes_join_the_record(project):
    plan, path = make_plan(project.parent)
    inputs = downloads(project.parent, plan)

    done = shardrun(project, "merge", "--plain", "--plan", str(path), str(inputs))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 shards: 6 pass (2 reused) in " in done.stdout
    assert "merged 3 partitions and 2 reused shards; " in done.stderr
    assert "; 6 passes recorded in " in done.stderr
    run = _latest(project).resolve()
    report = json.loads((run / "report.json").read_text())
    jsonschema.validate(
        report, json.loads((Path(json_report.__file__).parent / "schema.json").read_text())
    )
    shards = {s["name"]: s for s in report["shards"]}
    assert sorted(shards) == ["r1", "r2", "s1", "s2", "s3", "s4"]
    assert {n: s["reused_from"] for n, s in shards.items() if s["reused_from"]} == {
        "r1": EARLIER,
        "r2": EARLIER,
    }
    assert shards["r1"]["reuse_key"] == key_of("r1") and shards["r1"]["status"] == "PASS"
    assert [c["name"] for c in shards["r1"]["test_cases"]] == ["test_r1_a", "test_r1_b"]
    assert report["image_id"] == IMAGE
    assert [p["index"] for p in report["partitions"]] == [1, 2, 3]
    # The merged junit.xml is complete: the cases carried over beside those that ran.
    suites = ET.parse(run / "junit.xml").getroot().iter("testsuite")
    cases = {s.get("name"): [c.get("name") for c in s.iter("testcase")] for s in suites}
    assert cases["r1"] == ["test_r1_a", "test_r1_b"] and cases["s4"] == ["test_s4"]
    assert "r2" in cases  # no cases recorded: one testcase for the shard, passed
    assert "reused from run 20260101-000000-earlier" in (run / "report.html").read_text()
    markdown = (run / "summary.md").read_text()
    assert "r1" in markdown and "2 reused" in markdown

    record = _record(project)
    assert set(record) == {key_of(n) for n in ("old", "r1", "r2", "s1", "s2", "s3", "s4")}
    assert record[key_of("old")].finished == FINISHED  # restored from the cache: kept
    s1 = record[key_of("s1")]
    assert (s1.shard, s1.run, s1.image) == ("s1", run.name, IMAGE)
    assert [c.name for c in s1.cases] == ["test_s1"]  # its cases, for the next reuse
    # The reused ones stay as they passed, marked used now (so `clean` keeps them).
    r1 = record[key_of("r1")]
    assert (r1.run, r1.cases, r1.finished > FINISHED) == (EARLIER, REUSED[0].cases, True)


def test_a_skipped_partitions_missing_folder_is_accepted_only_with_the_plan(project):
    plan, path = make_plan(project.parent)
    inputs = downloads(project.parent, plan)

    lost = shardrun(project, "merge", "--plain", str(inputs))

    assert "partition 4 of 4 never reported" in _one_line_error(lost, 4)
    done = shardrun(project, "merge", "--plain", "--plan", str(path), str(inputs))
    assert done.returncode == 0 and "merged 3 partitions and 2 reused" in done.stderr
    # Without --plan the merge is what it was: no record of passes is touched.
    os.remove(layout.results_record(layout.state_dir(project)))
    failed = partition_run(project.parent / "more", 4, 4, [])
    _rewrite(failed, lambda r: r["partition"].update(plan=plan.digest))
    done = shardrun(project, "merge", "--plain", str(inputs), str(failed))
    assert done.returncode == 0, done.stderr
    assert "4 shards: 4 pass in " in done.stdout and "recorded" not in done.stderr
    assert not layout.results_record(layout.state_dir(project)).exists()


def test_a_partition_that_ran_and_is_lost_still_fails_the_merge_with_the_plan(project):
    plan, path = make_plan(project.parent)
    inputs = downloads(project.parent, plan)
    (inputs / "job2" / os.listdir(inputs / "job2")[0] / "report.json").unlink()
    before = _record(project)

    done = shardrun(project, "merge", "--plain", "--plan", str(path), str(inputs))

    assert "partition 2 of 4 never reported" in _one_line_error(done, 4)
    assert _record(project) == before


def test_no_partition_folder_at_all_when_the_plan_gave_no_partition_shards(project):
    _, path = make_plan(project.parent, shares=((), (), ()))
    missing = project.parent / "partitions"  # download-artifact made no folder

    done = shardrun(project, "merge", "--plain", "--plan", str(path), str(missing))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 shards: 2 pass (2 reused) in 0.0s" in done.stdout
    assert "merged 0 partitions and 2 reused shards" in done.stderr
    report = json.loads((_latest(project) / "report.json").read_text())
    assert [(s["name"], s["reused_from"]) for s in report["shards"]] == [
        ("r1", EARLIER),
        ("r2", EARLIER),
    ]
    assert report["partitions"] == [] and report["project"] == "project"
    assert _record(project)[key_of("r2")].run == EARLIER

    # A plan with shards to run needs their folders: a missing one is named.
    _, busy = make_plan(project.parent)
    error = _one_line_error(shardrun(project, "merge", "--plan", str(busy), str(missing)), 4)
    assert f"{missing}: no such file or folder" in error


def test_a_report_of_another_plan_than_the_one_given_is_refused(project):
    plan, path = make_plan(project.parent)
    inputs = downloads(project.parent, plan, digest="ab" * 32)
    before = _record(project)

    done = shardrun(project, "merge", "--plain", "--plan", str(path), str(inputs))

    error = _one_line_error(done, 4)
    assert f"is of another plan than {path}" in error
    assert _record(project) == before
    assert not os.path.lexists(_latest(project))


def test_a_plan_that_is_not_one_is_one_line_and_exit_2(project):
    plan, path = make_plan(project.parent)
    inputs = downloads(project.parent, plan)
    path.write_text('{"schema": "https://shardrun.dev/schemas/plan-1.json", "partitions": 5}')

    done = shardrun(project, "merge", "--plain", "--plan", str(path), str(inputs))

    assert f"{path} cannot be read as a plan" in _one_line_error(done, 2)


def test_only_clean_first_attempt_passes_are_recorded(project):
    plan, path = make_plan(project.parent, reused_shards=())
    inputs = downloads(project.parent, plan, failing=("s2",))
    retried = inputs / "job1" / os.listdir(inputs / "job1")[0]
    _rewrite(retried, lambda r: r["shards"][1].update(attempt=2))  # s4 passed on a retry

    done = shardrun(project, "merge", "--plain", "--plan", str(path), str(inputs))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "; 2 passes recorded in " in done.stderr
    assert {p.shard for p in _record(project).values()} == {"old", "r1", "s1", "s3"}


def test_a_record_that_cannot_be_written_is_a_note_not_another_verdict(project):
    plan, path = make_plan(project.parent)
    inputs = downloads(project.parent, plan)
    record = layout.results_record(layout.state_dir(project))
    record.unlink()
    record.mkdir()  # no file can be renamed onto it

    done = shardrun(project, "merge", "--plain", "--plan", str(path), str(inputs))

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"shardrun: the passes were not recorded in {record} (" in done.stderr
    assert "the next build runs those shards again" in done.stderr


# ---- a partition's report with hostile reuse fields --------------------------------------

NEAR_MISSES = [
    key_of("s1").upper(),
    key_of("s1")[:-1],
    key_of("s1") + "0",
    key_of("s1") + "\n",
    "sha1:" + "ab" * 20,
    " " + key_of("s1"),
    "../../etc/passwd",
    "merged-1\n::error::x",
    "x" * 101,
    EARLIER,
]


def _is_json(value) -> bool:
    """A value JSON can hold (NaN and the infinities are refused with the whole file)."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    field=st.sampled_from(["reuse_key", "reused_from"]),
    shard=st.integers(0, 1),
    value=st.one_of(st.sampled_from(NEAR_MISSES), foreign_json.values.filter(_is_json)),
)
def test_any_reuse_field_merges_or_is_one_line_and_the_record_holds_only_keys(
    tmp_path_factory, field, shard, value
):
    root = tmp_path_factory.mktemp("hostile")
    (root / "project").mkdir()
    plan, path = make_plan(root)
    inputs = downloads(root, plan)
    part = inputs / "job1" / os.listdir(inputs / "job1")[0]
    _rewrite(part, lambda r: r["shards"][shard].update({field: value}))

    with contextlib.chdir(root / "project"):
        done = CliRunner().invoke(
            app, ["merge", "--plain", "--plan", str(path), str(inputs)], env={"COLUMNS": "200"}
        )

    assert done.exit_code in (0, 4), (done.exit_code, done.stderr[-2000:], done.exception)
    record = layout.results_record(layout.state_dir(root / "project"))
    if done.exit_code == 4:
        [line] = done.stderr.splitlines()
        assert line.startswith("shardrun: error: ") and f"shards[{shard + 1}].{field}" in line
        assert not record.exists()
        return
    entries = json.loads(record.read_text())["entries"]
    assert all(results_record.KEY.fullmatch(k) for k in entries)
    report = json.loads((_latest(root / "project").resolve() / "report.json").read_text())
    assert report["shards"][shard][field] == value  # accepted: only a value of its form
