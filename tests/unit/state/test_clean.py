"""shardrun.housekeeping: listing past runs and cleaning old ones and old cache files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shardrun.report.history import past_runs, resolve_show
from shardrun.state import clean as housekeeping

DAY = 86400.0


def run(state: Path, run_id: str, age_days: float, statuses=("PASS",), latest=False) -> Path:
    folder = state / "runs" / run_id
    folder.mkdir(parents=True)
    report = {
        "run_id": run_id,
        "started": 1000.0,
        "image_id": "sha256:" + "ab" * 32,
        "exit_code": 0,
        "shards": [{"name": f"s{i}", "status": s} for i, s in enumerate(statuses)],
    }
    (folder / "report.json").write_text(json.dumps(report))
    (folder / "s0.log").write_text("log\n")
    for path in (folder / "report.json", folder / "s0.log"):
        os.utime(path, (NOW - age_days * DAY,) * 2)
    if latest:
        (state / "runs" / "latest").symlink_to(run_id)
    return folder


NOW = 2_000_000_000.0


def cache_file(state: Path, name: str, age_days: float) -> Path:
    path = state / "cache" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 10)
    os.utime(path, (NOW - age_days * DAY,) * 2)
    return path


def test_clean_removes_old_runs_and_cache_files_but_never_the_latest_of_each(tmp_path: Path):
    old = run(tmp_path, "20200101-000000-aaaaaa", 30)
    recent = run(tmp_path, "20200201-000000-bbbbbb", 1)
    latest_but_old = run(tmp_path, "20200102-000000-cccccc", 40, latest=True)
    newest_full = cache_file(tmp_path, "a" * 64 + ".tar", 20)
    older_full = cache_file(tmp_path, "b" * 64 + ".tar", 25)
    old_thin = cache_file(tmp_path, "a" * 64 + ".thin2.tar", 20)
    fresh_oci = cache_file(tmp_path, "c" * 64 + ".oci1.tar", 0)

    done = housekeeping.clean_files(tmp_path, 7 * DAY, now=NOW)

    assert not old.exists() and recent.exists() and latest_but_old.exists()
    assert newest_full.exists() and fresh_oci.exists()
    assert not older_full.exists() and not old_thin.exists()
    assert (done.runs, done.cache_files) == (1, 2)


def test_runs_are_listed_newest_first_with_counts_and_show_picks_run_or_shard(tmp_path: Path):
    run(tmp_path, "20200101-000000-aaaaaa", 3, ("PASS", "FAIL", "FAIL"))
    run(tmp_path, "20200102-000000-bbbbbb", 2, latest=True)
    (tmp_path / "runs" / "junk").mkdir()  # no report: skipped

    rows = past_runs(tmp_path)

    assert [r.run_id for r in rows] == ["20200102-000000-bbbbbb", "20200101-000000-aaaaaa"]
    assert rows[1].counts == "1 pass, 2 fail"
    assert resolve_show(tmp_path, "20200101-000000-aaaaaa", None) == (
        "20200101-000000-aaaaaa",
        None,
    )
    assert resolve_show(tmp_path, "s1", None) == ("20200102-000000-bbbbbb", "s1")


def test_an_owner_marker_that_is_a_fifo_or_nested_keeps_its_run_and_never_hangs(tmp_path):
    state = tmp_path / ".shardrun"
    fifo = run(state, "20200101-000000-aaaaaa", age_days=30)
    os.mkfifo(fifo / "owner.json")  # a reader that opens it blocks until a writer comes
    nested = run(state, "20200101-000000-bbbbbb", age_days=30)
    (nested / "owner.json").write_text("[" * 100_000 + "]" * 100_000)
    gone = run(state, "20200101-000000-cccccc", age_days=30)

    cleaned = housekeeping.clean_files(state, older_than=7 * DAY, now=NOW)

    # Unreadable markers prove no runner dead: those runs stay; the unmarked one goes.
    assert cleaned.runs == 1
    assert fifo.exists() and nested.exists() and not gone.exists()


def test_clean_forgets_the_passes_no_run_used_within_the_age(tmp_path: Path):
    from shardrun.state import layout, results_record
    from shardrun.state.results_record import Passed

    def passed(key: str, days: float) -> Passed:
        return Passed(key, "s", "20200101-000000-aaaaaa", NOW - days * DAY, 1.0, "sha256:x")

    record = layout.results_record(tmp_path)
    results_record.add(record, [passed("sha256:" + "a" * 64, 30), passed("sha256:" + "b" * 64, 1)])

    done = housekeeping.clean_files(tmp_path, 7 * DAY, now=NOW)

    assert done.passes == 1
    assert list(results_record.load(record)[0]) == ["sha256:" + "b" * 64]
