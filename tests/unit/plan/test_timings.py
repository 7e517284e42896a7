"""shardrun.timings: the durations history and the atomic writer reports share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shardrun.model.results import ShardResult, Status
from shardrun.plan import timings


def result(name: str, status: Status, duration: float | None) -> ShardResult:
    return ShardResult(
        name=name,
        status=status,
        exit_code=0,
        started=None if duration is None else 1000.0,
        finished=None if duration is None else 1000.0 + duration,
        worker="local",
        slot=1,
        log_path=None,
    )


def test_load_of_a_missing_file_is_empty(tmp_path: Path):
    assert timings.load(tmp_path / "nope" / "timings.json") == {}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        "[1, 2]",
        '{"durations": null}',
        '{"durations": {"unit": "slow"}}',
        '{"durations": {"unit": null}}',
        '{"durations": [1]}',
    ],
)
def test_load_of_a_corrupt_file_is_empty(tmp_path: Path, text: str):
    path = tmp_path / "timings.json"
    path.write_text(text)
    assert timings.load(path) == {}


def test_update_records_a_first_duration_and_blends_later_ones_half_and_half():
    old = {"unit": 10.0, "other": 3.0}
    new = timings.update(old, [result("unit", Status.PASS, 20.0), result("lint", Status.FAIL, 4.2)])
    assert new == {"unit": 15.0, "other": 3.0, "lint": 4.2}
    assert old == {"unit": 10.0, "other": 3.0}  # the input is not modified


def test_update_rounds_to_milliseconds():
    assert timings.update({}, [result("unit", Status.PASS, 1.23456)]) == {"unit": 1.235}


@pytest.mark.parametrize(
    ("status", "duration"),
    [
        (Status.TIMEOUT, 99.0),  # killed: its real duration is unknown
        (Status.ERROR, 0.5),  # never ran its tests
        (Status.CANCELLED, 2.0),
        (Status.NOT_RUN, None),
        (Status.PASS, None),  # no times recorded
    ],
)
def test_update_ignores_shards_without_a_verdict_or_duration(status, duration):
    assert timings.update({"unit": 10.0}, [result("unit", status, duration)]) == {"unit": 10.0}


def test_save_then_load_round_trips(tmp_path: Path):
    path = tmp_path / "state" / "timings.json"  # the folder is created
    timings.save(path, {"b": 2.5, "a": 1.0})
    assert timings.load(path) == {"a": 1.0, "b": 2.5}
    assert list(json.loads(path.read_text())["durations"]) == ["a", "b"]  # stable diffs


def test_split_files_learn_their_times_keep_the_others_and_drop_the_gone(tmp_path):
    from shardrun.plan import timings as t

    old = {"a.py": 2.0, "b.py": 2.0, "kept.py": 5.0, "gone.py": 1.0}
    ran = ShardResult(
        name="g-1",
        status=Status.PASS,
        exit_code=0,
        started=0.0,
        finished=6.0,
        worker="w",
        slot=1,
        log_path=None,
    )
    new = t.update_files(
        old, [ran], {"g-1": ("a.py", "b.py")}, exists=lambda name: name != "gone.py"
    )
    # No JUnit: 6 s spread by the estimates (2:2), blended half and half with the record.
    assert new == {"a.py": 2.5, "b.py": 2.5, "kept.py": 5.0}
    measured = t.update_files(
        {},
        [ran],
        {"g-1": ("a.py", "b.py")},
        exists=lambda n: True,
        measured=lambda result, files: {"a.py": 5.0, "b.py": 1.0},
    )
    assert measured == {"a.py": 5.0, "b.py": 1.0}
    path = tmp_path / "timings.json"
    t.save(path, {"g-1": 6.0}, new)
    assert t.load_files(path) == new and t.load(path) == {"g-1": 6.0}
    t.save(path, {"g-1": 7.0})  # a save without files keeps them
    assert t.load_files(path) == new


def test_the_gap_between_shards_on_a_slot_is_learned_and_kept(tmp_path: Path):
    def ran(name, worker, slot, start, end):
        return ShardResult(
            name=name,
            status=Status.PASS,
            exit_code=0,
            started=start,
            finished=end,
            worker=worker,
            slot=slot,
            log_path=None,
        )

    results = [
        ran("a", "w", 1, 0.0, 1.0),
        ran("b", "w", 1, 1.2, 2.0),
        ran("c", "w", 1, 2.3, 3.0),
        ran("d", "w", 2, 0.0, 5.0),  # alone on its slot: no gap
        ran("e", "v", 1, 0.0, 1.0),
        ran("f", "v", 1, 1.2, 2.0),
    ]
    assert timings.update_gap(None, results) == 0.2  # the median of 0.2, 0.3, 0.2
    assert timings.update_gap(0.4, results) == 0.3  # blended
    assert timings.update_gap(0.4, results[3:4]) == 0.4  # nothing to learn from
    assert timings.update_gap(None, [ran("a", "w", 1, 0, 1), ran("b", "w", 1, 60, 61)]) == 2.0
    path = tmp_path / "timings.json"
    timings.save(path, {"a": 1.0}, gap=0.2)
    assert timings.load_gap(path) == 0.2
    timings.save(path, {"a": 2.0})  # a save without a new gap keeps the old one
    assert timings.load_gap(path) == 0.2 and timings.load(path) == {"a": 2.0}
    assert timings.load_gap(tmp_path / "none.json") == 0.0


def test_a_plan_counts_the_gap_for_every_shard():
    from shardrun.model.shard import Shard
    from shardrun.plan import partition

    times = {"long": 4.0, **{f"s{i}": 0.5 for i in range(8)}}
    shards = [Shard(name=n, command=("true",)) for n in times]
    plain = partition.make(shards, 2, times, {}, "sha256:x", "sha256:y")
    gapped = partition.make(shards, 2, times, {}, "sha256:x", "sha256:y", gap=0.25)
    assert sorted(plain.expected) == [4.0, 4.0]
    assert sorted(gapped.expected) == [5.0, 5.25]  # seven short shards pay seven gaps


def test_the_setup_of_split_groups_is_fitted_from_their_time_outside_test_cases(tmp_path):
    from shardrun.plan.affinity import Setup

    # 1 s a group and 2 s a directory: groups of 1, 2 and 3 directories.
    samples = [(3.0, 1), (5.0, 2), (7.0, 3)]
    assert timings.update_setup(None, samples) == Setup(1.0, 2.0)
    assert timings.update_setup(Setup(3.0, 0.0), samples) == Setup(2.0, 1.0)  # blended
    # Every group touched one directory: the old per-directory cost stands.
    assert timings.update_setup(None, [(3.0, 1), (3.0, 1)]) == Setup(3.0, 0.0)
    assert timings.update_setup(Setup(0.0, 2.0), [(3.0, 1)]) == Setup(0.5, 2.0)
    # A line below zero at no directories: all of it per directory.
    assert timings.update_setup(None, [(1.0, 1), (6.0, 2)]) == Setup(0.0, 2.333)
    assert timings.update_setup(None, []) is None
    path = tmp_path / "timings.json"
    timings.save(path, {}, setup=Setup(1.0, 2.0))
    assert timings.load_setup(path) == Setup(1.0, 2.0)
    timings.save(path, {"a": 1.0})  # kept by a save that learned none
    assert timings.load_setup(path) == Setup(1.0, 2.0)


def test_a_first_setup_is_not_blended_with_zeros_in_a_file_that_has_none(tmp_path: Path):
    from shardrun.plan.affinity import Setup

    path = tmp_path / "timings.json"
    timings.save(path, {"a": 1.0})  # times of other shards, no setup yet
    assert timings.recorded_setup(path) is None and timings.recorded_gap(path) is None
    assert timings.update_setup(timings.recorded_setup(path), [(3.0, 1), (5.0, 2)]) == Setup(
        1.0, 2.0
    )
