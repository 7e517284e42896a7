"""shardrun.history: past runs read back from their report.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shardrun.model.errors import ConfigError
from shardrun.report import history


def write_run(state: Path, run_id: str, statuses: dict[str, str], latest: bool = True) -> None:
    folder = state / "runs" / run_id
    folder.mkdir(parents=True)
    shards = [
        {"name": n, "status": s, "worker": None if s == "NOT RUN" else "local"}
        for n, s in statuses.items()
    ]
    (folder / "report.json").write_text(json.dumps({"run_id": run_id, "shards": shards}))
    if latest:
        link = state / "runs" / "latest"
        link.unlink(missing_ok=True)
        link.symlink_to(run_id)


def test_the_failed_shards_of_the_latest_run_or_of_a_named_one(tmp_path: Path):
    write_run(tmp_path, "r1", {"a": "FAIL", "b": "PASS"})
    write_run(
        tmp_path,
        "r2",
        {"a": "PASS", "b": "TIMEOUT", "c": "ERROR", "d": "NOT RUN", "e": "CANCELLED"},
    )
    assert history.load(tmp_path).failed_names() == {"b", "c"}
    assert history.load(tmp_path, "r1").failed_names() == {"a"}
    assert history.load(tmp_path).shard("d") is None  # it never ran
    assert history.load(tmp_path).shard("a")["status"] == "PASS"


@pytest.mark.parametrize(
    "run_id, message",
    [
        (None, "no earlier run in"),
        ("r9", "no run r9 in"),
        ("../etc", "is not a run ID"),
    ],
)
def test_a_missing_run_is_one_line(tmp_path: Path, run_id, message):
    if run_id == "r9":
        write_run(tmp_path, "r1", {"a": "FAIL"})
    with pytest.raises(ConfigError, match=message) as info:
        history.load(tmp_path, run_id)
    assert "\n" not in str(info.value)


def test_a_damaged_report_is_one_line_naming_it(tmp_path: Path):
    write_run(tmp_path, "r1", {"a": "FAIL"})
    (tmp_path / "runs" / "r1" / "report.json").write_text("{not json")
    with pytest.raises(
        ConfigError, match=r"runs/r1/report.json is not a shardrun report \(not JSON"
    ):
        history.load(tmp_path)


def test_a_run_folder_from_elsewhere_is_read_by_its_path(tmp_path: Path):
    """A CI's merged run, downloaded anywhere: `--run PATH` takes its folder or report."""
    write_run(tmp_path / "downloads", "merged-1", {"a": "FAIL"}, latest=False)
    folder = tmp_path / "downloads" / "runs" / "merged-1"
    state = tmp_path / "project" / ".shardrun"
    for given in (folder, folder / "report.json"):
        past = history.load(state, str(given))
        assert past.run_id == "merged-1" and past.failed_names() == {"a"}


def test_a_folder_without_a_report_is_no_run_whatever_its_name(tmp_path: Path):
    """`--run ../etc` from /src is a folder that exists: still not a run."""
    with pytest.raises(ConfigError, match="is not a run ID"):
        history.load(tmp_path / ".shardrun", str(tmp_path.parent) + "/")
