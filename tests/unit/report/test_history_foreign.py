"""shardrun.report.history reading reports that anything may have replaced, or that come
from another machine (`--run FOLDER`): refused in one line, never followed out of the run's
folder, never blocking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shardrun.model.errors import ConfigError
from shardrun.report import history, shown_run


def report(run_id: str = "r1", log: str | None = None, **top) -> dict:
    return {
        "run_id": run_id,
        "started": 1.7e9,
        "exit_code": 1,
        **top,
        "shards": [{"name": "a", "status": "FAIL", "worker": "local", "log": log}],
    }


def write_run(state: Path, data: dict, run_id: str = "r1") -> Path:
    folder = state / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(data))
    (folder / "a.log").write_text("the log\n")
    (state / "runs" / "latest").symlink_to(run_id)
    return folder


def test_a_shards_log_is_found_in_its_runs_folder_wherever_it_ran(tmp_path: Path):
    state = tmp_path / ".shardrun"
    folder = write_run(state, report(log="/home/runner/work/p/.shardrun/runs/r1/a.log"))
    assert history.shard_log(history.load(state), "a") == folder / "a.log"
    downloaded = tmp_path / "dl" / "merged-7"
    downloaded.mkdir(parents=True)
    (downloaded / "report.json").write_text(json.dumps(report("merged-7", "/ci/merged-7/a.log")))
    (downloaded / "a.log").write_text("x\n")
    past = history.load(state, str(downloaded))
    assert history.shard_log(past, "a") == downloaded / "a.log"


@pytest.mark.parametrize(
    "log",
    [
        "/etc/shadow",
        "/x/r1/../../../etc/passwd",
        "../../etc/passwd",
        "/x/r1//etc/passwd",
        "a\n.log",
    ],
)
def test_a_log_a_report_names_outside_its_folder_is_refused(tmp_path: Path, log: str):
    state = tmp_path / ".shardrun"
    write_run(state, report(log=log))
    with pytest.raises(ConfigError, match='log of "a" is not one to show') as info:
        history.shard_log(history.load(state), "a")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("plant", ["link out", "fifo"])
def test_a_log_that_is_a_link_out_or_a_fifo_is_refused(tmp_path: Path, plant: str):
    state = tmp_path / ".shardrun"
    folder = write_run(state, report(log="/x/r1/a.log"))
    (folder / "a.log").unlink()
    if plant == "fifo":
        os.mkfifo(folder / "a.log")
    else:
        (tmp_path / "planted").write_text("secret\n")
        (folder / "a.log").symlink_to(tmp_path / "planted")
    with pytest.raises(ConfigError, match="is not one to show"):
        history.shard_log(history.load(state), "a")


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _link_out(path: Path) -> None:
    outside = path.parents[3] / "outside.json"
    outside.write_text(path.read_text())
    path.unlink()
    path.symlink_to(outside)


@pytest.mark.parametrize(
    "damage, phrase",
    [
        (_fifo, "a FIFO, not a regular file"),
        (_link_out, "lies outside"),
        (lambda p: p.write_text('{"shards": ' * 40 + "[]" + "}" * 40), "nested deeper than 32"),
        (lambda p: p.write_text(json.dumps(report(started=1e308))), "is not a shardrun report;"),
        (lambda p: p.write_text(json.dumps(report(exit_code=2**70))), "is not a shardrun report;"),
        (lambda p: os.truncate(p, history.REPORT_MAX + 1), "over the 64.0 MB"),
    ],
)
def test_a_report_that_is_refused_is_one_line_and_no_run_in_the_list(
    tmp_path: Path, damage, phrase
):
    state = tmp_path / ".shardrun"
    folder = write_run(state, report())
    damage(folder / "report.json")
    with pytest.raises(ConfigError, match="is not a shardrun report") as info:
        history.load(state)
    assert phrase in str(info.value) and "\n" not in str(info.value)
    assert history.past_runs(state) == []


def test_a_run_folder_that_is_a_link_elsewhere_is_not_read(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    write_run(elsewhere, report())
    state = tmp_path / ".shardrun"
    (state / "runs").mkdir(parents=True)
    (state / "runs" / "r1").symlink_to(elsewhere / "runs" / "r1")
    with pytest.raises(ConfigError, match="lies outside"):
        history.load(state, "r1")
    assert history.past_runs(state) == []


def test_a_downloaded_folder_whose_report_is_a_fifo_or_link_is_refused(tmp_path: Path):
    folder = tmp_path / "dl"
    folder.mkdir()
    os.mkfifo(folder / "report.json")
    with pytest.raises(ConfigError, match="a FIFO, not a regular file"):
        history.load(tmp_path / ".shardrun", str(folder))
    (folder / "report.json").unlink()
    (tmp_path / "real.json").write_text(json.dumps(report()))
    (folder / "report.json").symlink_to(tmp_path / "real.json")
    with pytest.raises(ConfigError, match="lies outside"):
        history.load(tmp_path / ".shardrun", str(folder))


def test_the_summary_shown_is_made_from_the_report_with_paths_inside_the_run(tmp_path: Path):
    state = tmp_path / ".shardrun"
    data = report(log="/home/runner/work/p/.shardrun/runs/r1/a.log", finished=1.7e9 + 5)
    data["shards"][0].update(
        artifacts=[
            "/home/runner/.shardrun/runs/r1/a/artifacts/x.txt",
            "/etc/passwd",
            "/x/r1/../../../etc/shadow",
        ],
        detail="[/] \x1b[31m",
        kept_container="shardrun-kept-a",
        test_cases=[
            {"classname": "t", "name": "one", "outcome": "failure", "flaky": False},
            {"classname": "t", "name": "two\nthree", "outcome": "error"},
            {"name": "flaky", "outcome": "passed", "flaky": True},
            "not a case",
            {"outcome": "failure", "name": 7},
        ],
    )
    data["workers"] = [{"name": "local", "url": "unix:///s", "slots": 2, "load": "none"}]
    data["phases"] = {
        "compression": [
            {"codec": "zstd", "raw": 10, "compressed": 4, "cpu": 0.5},
            {"codec": "rot13", "raw": 1, "compressed": 1, "cpu": 0},
            {"codec": "gzip", "raw": "10", "compressed": 4, "cpu": 1},
        ]
    }
    folder = write_run(state, data)
    os.mkfifo(folder / "summary.md")  # never opened

    summary, recorded = shown_run.run_summary(history.load(state))

    [result] = summary.results
    assert result.log_path == str(folder / "a.log")
    assert result.artifacts == (str(folder / "a" / "artifacts" / "x.txt"),)  # the rest leave it
    assert result.junit is None  # not read: the report's own cases are what is shown
    assert (result.detail, result.kept) == ("[/] \\x1b[31m", "shardrun-kept-a")
    assert (summary.started, summary.finished, summary.exit_code) == (1.7e9, 1.7e9 + 5, 1)
    assert [(w.name, w.slots, w.load) for w in summary.workers] == [("local", 2, "none")]
    assert summary.compression == ({"codec": "zstd", "raw": 10, "compressed": 4, "cpu": 0.5},)
    assert recorded.failing == {"a": (("t::one", "t::two\\nthree", "?"), 3)}
    assert recorded.flaky == 1


def test_a_report_without_times_is_shown_from_its_shards_times(tmp_path: Path):
    state = tmp_path / ".shardrun"
    data = {
        "shards": [
            {"name": "a", "status": "PASS", "worker": "w", "started": 10.0, "finished": 12.0},
            {"name": "b", "status": "NOT RUN", "worker": None},
        ]
    }
    write_run(state, data)
    summary, recorded = shown_run.run_summary(history.load(state))
    assert (summary.run_id, summary.started, summary.finished) == ("r1", 10.0, 12.0)
    assert recorded.failing == {"a": ((), 0), "b": ((), 0)}


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"status": "MAYBE"}, "shards[1].status is 'MAYBE', not one of"),
        ({"exit_code": "1"}, "shards[1].exit_code is '1', not a whole number"),
        ({"started": -5}, "shards[1].started is -5, not a time in seconds"),
    ],
)
def test_a_report_of_another_shape_is_not_shown(tmp_path: Path, change: dict, phrase: str):
    state = tmp_path / ".shardrun"
    data = report()
    data["shards"][0].update(change)
    write_run(state, data)
    with pytest.raises(ConfigError, match=r"report.json is not one to show") as caught:
        shown_run.run_summary(history.load(state))
    assert phrase in str(caught.value)


def test_the_latest_image_id_that_is_a_fifo_is_no_image_not_a_hang(tmp_path: Path):
    state = tmp_path / ".shardrun"
    write_run(state, report(image_id="sha256:" + "cd" * 32))
    os.mkfifo(state / "image-id")
    assert history.used_images(state) == {"shardrun/image:" + "cd" * 32}
