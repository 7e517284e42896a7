"""shardrun.report.merge: which sets of partition reports make one run, and which fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shardrun.model.errors import InfraError
from shardrun.report import merge


def job(root: Path, name: str, index: int, shards: list[str], total: int = 3,
        plan: str = "p1") -> Path:
    folder = root / name / f"2026-{name}"
    folder.mkdir(parents=True)
    report = {"run_id": folder.name, "project": "demo", "image_id": "sha256:ab",
              "started": 1.0 + index, "finished": 5.0 + index, "exit_code": 0,
              "partition": {"index": index, "total": total, "plan": plan},
              "workers": [{"name": "local", "url": "unix://"}],
              "shards": [{"name": n, "status": "PASS", "worker": "local", "slot": 1,
                          "log": f"/ci/.shardrun/runs/{folder.name}/{n}.log"} for n in shards]}
    (folder / "report.json").write_text(json.dumps(report))
    for n in shards:
        (folder / f"{n}.log").write_text(f"{n} ok\n")
    return folder


def test_every_partition_once_makes_one_run_with_its_logs_copied(tmp_path: Path):
    for k, names in enumerate([["a", "b"], ["c"], ["d"]], 1):
        job(tmp_path, f"job{k}", k, names)
    parts = merge.read(merge.find([str(tmp_path / "job*")]))
    summary = merge.merge(parts, "merged-1", tmp_path / "out")

    assert [r.name for r in summary.results] == ["a", "b", "c", "d"]
    assert {r.worker for r in summary.results} == {"1:local", "2:local", "3:local"}
    assert (summary.started, summary.finished) == (2.0, 8.0)
    assert all(Path(r.log_path).read_text().endswith("ok\n") for r in summary.results)
    assert summary.exit_code == 0


@pytest.mark.parametrize("jobs, message", [
    ([(1, ["a"]), (3, ["c"])], "partition 2 of 3 never reported"),
    ([(1, ["a"]), (1, ["b"]), (2, ["c"]), (3, ["d"])], "partition 1/3 reported twice"),
    ([(1, ["a"]), (2, ["a"]), (3, ["d"])], 'shard "a" ran in partitions 1 and 2'),
])
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
    summary = merge.merge(merge.read(merge.find([str(tmp_path)])), "m", tmp_path / "out")
    assert summary.exit_code == 4 and "partition 1 exited 4" in summary.error


def test_the_same_run_downloaded_twice_counts_once(tmp_path: Path):
    """An artifact upload follows the `latest` link: one run's folder arrives twice."""
    import shutil

    for k in (1, 2, 3):
        folder = job(tmp_path, f"job{k}", k, [f"s{k}"])
        shutil.copytree(folder, folder.parent / "latest")
    parts = merge.read(merge.find([str(tmp_path)]))
    assert [p.index for p in parts] == [1, 2, 3]
