"""state/results_record: the record of passed shards, .shardrun/results.json. It reads back
what it wrote, merges writers (also two processes at once), keeps to its caps, prunes, and
reads a damaged or foreign file as no record, or as its well-formed entries, in one line."""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import replace
from pathlib import Path

import pytest

from shardrun.state import files, layout, results_record
from shardrun.state.results_record import Case, Passed, add, load, prune


def a_key(n: int) -> str:
    return f"sha256:{n:064x}"


def passed(n: int = 1, finished: float = 1_700_000_000.0, **changes) -> Passed:
    entry = Passed(
        key=a_key(n),
        shard=f"unit-{n}",
        run="20240501-100000-abcdef",
        finished=finished,
        duration=12.5,
        image="sha256:" + "ab" * 32,
        cases=(
            Case("tests.test_a", "test_one", 0.25),
            Case("tests.test_a", "test_two[ü-ß]", 0.0, skipped=True),
        ),
    )
    return replace(entry, **changes)


@pytest.fixture
def record(tmp_path: Path) -> Path:
    state = layout.state_dir(tmp_path)
    state.mkdir()
    return layout.results_record(state)


def test_it_lives_beside_timings(tmp_path: Path) -> None:
    state = layout.state_dir(tmp_path)
    assert layout.results_record(state) == state / "results.json"
    assert layout.results_record(state).parent == layout.timings(state).parent


# ---- round trip and merge ------------------------------------------------------------------


def test_a_missing_record_is_empty_and_says_nothing(record: Path) -> None:
    assert load(record) == ({}, "")


def test_what_is_added_reads_back(record: Path) -> None:
    entries = [passed(1), passed(2, cases=())]
    add(record, entries)
    assert load(record) == ({p.key: p for p in entries}, "")
    data = json.loads(record.read_text(encoding="utf-8"))
    assert data["version"] == 1
    assert data["entries"][a_key(1)]["cases"] == [
        ["tests.test_a", "test_one", 0.25],
        ["tests.test_a", "test_two[ü-ß]", 0.0, True],
    ]


def test_the_folder_is_made_and_no_lock_or_temp_file_stays(tmp_path: Path) -> None:
    path = layout.results_record(tmp_path / "new" / ".shardrun")
    add(path, [passed()])
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]


def test_adds_merge_and_the_later_finish_wins(record: Path) -> None:
    add(record, [passed(1, finished=100.0), passed(2, finished=100.0)])
    add(record, [passed(1, finished=200.0, run="later"), passed(3)])
    add(record, [passed(2, finished=50.0, run="earlier")])
    found, warning = load(record)
    assert warning == ""
    assert sorted(found) == [a_key(1), a_key(2), a_key(3)]
    assert found[a_key(1)].run == "later"
    assert found[a_key(2)].run == "20240501-100000-abcdef"


def test_adding_nothing_writes_nothing(record: Path) -> None:
    add(record, [])
    assert not record.exists()


def test_an_entry_load_would_refuse_is_not_written(record: Path) -> None:
    too_many = tuple(Case("c", f"t{i}", 0.0) for i in range(results_record.MAX_CASES + 1))
    refused = [
        passed(1, cases=too_many),
        passed(2, shard="x" * 1001),
        passed(3, duration=float("nan")),
        passed(4, finished=-1.0),
        passed(5, key="sha256:short"),
        passed(6, run="../elsewhere"),
        passed(7, cases=(Case("c", "bad\x00name", 0.0),)),
    ]
    add(record, [*refused, passed(8)])
    assert load(record) == ({a_key(8): passed(8)}, "")


def test_as_many_cases_as_the_cap_are_kept(record: Path) -> None:
    cases = tuple(Case("c", f"t{i}", 0.001) for i in range(results_record.MAX_CASES))
    add(record, [passed(cases=cases)])
    assert load(record)[0][a_key(1)].cases == cases


# ---- caps ------------------------------------------------------------------------------


def test_the_newest_entries_are_kept_up_to_the_cap(record: Path) -> None:
    cap = results_record.MAX_ENTRIES
    add(record, [passed(n, finished=float(n), cases=()) for n in range(cap + 1)])
    found, warning = load(record)
    assert warning == ""
    assert len(found) == cap
    assert a_key(0) not in found and a_key(cap) in found


def test_the_newest_entries_that_fit_in_the_byte_cap_are_kept(record, monkeypatch) -> None:
    one = len(json.dumps(results_record._as_json(passed(1)), ensure_ascii=False)) + 80
    monkeypatch.setattr(results_record, "RECORD_MAX", 3 * one)
    huge = passed(9, finished=9.0, cases=tuple(Case("c", "x" * 900, 0.0) for _ in range(9)))
    add(record, [passed(n, finished=float(n)) for n in range(1, 6)] + [huge])
    assert record.stat().st_size <= 3 * one
    # The huge one does not fit at all, and does not push out the older ones that do.
    assert sorted(load(record)[0]) == [a_key(3), a_key(4), a_key(5)]


def test_a_record_of_more_entries_than_the_cap_is_no_record(record, monkeypatch) -> None:
    add(record, [passed(n) for n in range(3)])
    monkeypatch.setattr(results_record, "MAX_ENTRIES", 2)
    found, warning = load(record)
    assert found == {}
    assert str(record) in warning and "3 entries, over the 2" in warning


# ---- prune -----------------------------------------------------------------------------


def test_prune_drops_what_finished_before_and_says_how_many(record: Path) -> None:
    add(record, [passed(n, finished=float(n * 100)) for n in range(1, 5)])
    assert prune(record, older_than=250.0) == 2
    assert sorted(load(record)[0]) == [a_key(3), a_key(4)]
    assert prune(record, older_than=250.0) == 0


def test_prune_of_no_record_is_nothing(record: Path) -> None:
    assert prune(record, older_than=1e12) == 0
    assert not record.exists()


def test_prune_that_drops_nothing_leaves_the_file_alone(record: Path) -> None:
    add(record, [passed(1, finished=500.0)])
    before = record.stat()
    assert prune(record, older_than=100.0) == 0
    assert record.stat().st_ino == before.st_ino  # not rewritten


# ---- two writers at once ---------------------------------------------------------------


def _add_many(path: str, first: int, count: int, start: multiprocessing.synchronize.Event) -> None:
    start.wait()
    for n in range(first, first + count):
        add(Path(path), [passed(n, finished=float(n))])


def test_two_processes_adding_at_once_lose_no_entry(record: Path) -> None:
    # 100 adds each: without the lock, a re-read, merge and write lost entries in every
    # one of five tries here; with 30 each, in only some.
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [
        context.Process(target=_add_many, args=(str(record), first, 100, start))
        for first in (0, 1000)
    ]
    for writer in writers:
        writer.start()
    start.set()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    found, warning = load(record)
    assert warning == ""
    assert sorted(found) == sorted(a_key(n) for n in [*range(100), *range(1000, 1100)])


def test_a_lock_left_by_a_killed_writer_is_swept(record: Path) -> None:
    lock = layout.lock(record)
    lock.touch()
    files.sweep_stale_temp(record.parent)
    assert not lock.exists()


# ---- damaged and foreign files ------------------------------------------------------------


def _whole(entry: Passed) -> dict:
    return results_record._as_json(entry)


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b'{"version": 1, "entries": {"a": NaN}}', "not JSON"),
        (b"[]", "holds a list, not a record"),
        (b'{"version": 2, "entries": {}}', "version 2, not 1"),
        (b'{"version": true, "entries": {}}', "version True"),
        (b'{"version": "1", "entries": {}}', "version '1'"),
        (b'{"entries": {}}', "version None"),
        (b'{"version": 1, "entries": []}', "entries are a list"),
        (b'{"version": 1}', "entries are nothing"),
        (b"[" * 10 + b"]" * 10, "nested deeper"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_a_damaged_or_foreign_file_is_no_record_in_one_line(record, content, phrase) -> None:
    record.write_bytes(content)
    found, warning = load(record)
    assert found == {}
    assert phrase in warning and str(record) in warning and "\n" not in warning


def test_a_file_over_the_size_cap_is_not_read(record: Path) -> None:
    record.touch()
    os.truncate(record, results_record.RECORD_MAX + 1)  # sparse: no disk
    found, warning = load(record)
    assert found == {} and "over the 64.0 MB" in warning


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        ("fifo", "a FIFO, not a regular file"),
        ("folder", "a folder, not a regular file"),
        ("link out", "lies outside"),
        ("link in", "a symbolic link, not a regular file"),
        ("loop", "a loop of symbolic links"),
    ],
)
def test_anything_but_a_regular_file_is_no_record(record: Path, kind: str, phrase: str) -> None:
    good = json.dumps({"version": 1, "entries": {a_key(1): _whole(passed())}})
    if kind == "fifo":
        os.mkfifo(record)
    elif kind == "folder":
        record.mkdir()
    elif kind == "loop":
        record.symlink_to(record.name)
    else:
        target = (record.parent.parent if kind == "link out" else record.parent) / "other.json"
        target.write_text(good)
        record.symlink_to(target)
    found, warning = load(record)
    assert found == {} and str(record) in warning and phrase in warning


BAD_ENTRIES = {
    "key": ("sha256:ABC", {}),
    "not an object": (a_key(10), []),
    "shard": (a_key(11), {"shard": "../x"}),
    "run": (a_key(12), {"run": ""}),
    "finished": (a_key(13), {"finished": -5}),
    "finished type": (a_key(14), {"finished": "soon"}),
    "duration": (a_key(15), {"duration": 1e8}),
    "duration bool": (a_key(16), {"duration": True}),
    "image": (a_key(17), {"image": None}),
    "cases": (a_key(18), {"cases": {}}),
    "case shape": (a_key(19), {"cases": [["c", "n"]]}),
    "case skipped": (a_key(20), {"cases": [["c", "n", 0.1, 1]]}),
    "case time": (a_key(21), {"cases": [["c", "n", -0.1]]}),
    "case name": (a_key(22), {"cases": [["c", 7, 0.1]]}),
    "surrogate": (a_key(23), {"cases": [["c", "\ud800", 0.1]]}),
    "long": (a_key(24), {"image": "x" * 1001}),
    "control": (a_key(25), {"shard": "a\nb"}),
}


@pytest.mark.parametrize("bad", sorted(BAD_ENTRIES))
def test_a_damaged_entry_is_left_out_and_the_rest_kept(record: Path, bad: str) -> None:
    good = passed(1)
    key, change = BAD_ENTRIES[bad]
    damaged = change if not isinstance(change, dict) else {**_whole(passed(2)), **change}
    document = {"version": 1, "entries": {good.key: _whole(good), key: damaged}}
    record.write_text(json.dumps(document))
    found, warning = load(record)
    assert found == {good.key: good}
    assert warning.startswith("ignoring 1 of its 2 entries (") and str(record) in warning
    assert "\n" not in warning


def test_an_add_over_a_damaged_file_writes_a_good_one(record: Path) -> None:
    record.write_bytes(b"\x00garbage")
    add(record, [passed(1)])
    assert load(record) == ({a_key(1): passed(1)}, "")


def test_whole_numbers_read_as_seconds(record: Path) -> None:
    entry = {**_whole(passed(1)), "finished": 1_700_000_000, "duration": 3, "cases": []}
    record.write_text(json.dumps({"version": 1, "entries": {a_key(1): entry}}))
    found, _ = load(record)
    assert found[a_key(1)].finished == 1_700_000_000.0 and found[a_key(1)].duration == 3.0
