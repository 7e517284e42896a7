"""state/results_record's reader under damaged and arbitrary input (hypothesis): a version
of a valid record that is changed, cut short, nested deeply or given out-of-range values,
any JSON document and any bytes are read as entries that are each whole and in range, or
as no record, with at most one line, never an exception, in bounded time; and an add over
it writes a record that reads back clean.

Host-only: the test image has no hypothesis. A crash here is a bug in the reader to fix
there, never a reason to catch more in the test.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardrun.state import results_record
from shardrun.state.results_record import KEY, Case, Passed, add, load
from shardrun.state.shard_record import is_name
from tests.host.foreign_json import values, write

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECONDS = 5.0  # per example, at most: the reader's cost is bounded by the file's
KEYS = ["sha256:" + c * 64 for c in "0123"]
VALID = {
    "version": 1,
    "entries": {
        KEYS[0]: {
            "shard": "unit-1",
            "run": "20240501-100000-abcdef",
            "finished": 1.7e9,
            "duration": 12.5,
            "image": "sha256:" + "ab" * 32,
            "cases": [["tests.test_a", "test_one", 0.25], ["tests.test_a", "test_two", 0, True]],
        },
        KEYS[1]: {
            "shard": "lint",
            "run": "merged-20240501-100000-abcdef",
            "finished": 1.7e9 + 60,
            "duration": 3,
            "image": "",
            "cases": [],
        },
    },
}
NEW = Passed(KEYS[3], "new", "r2", 1.8e9, 1.0, "sha256:" + "cd" * 32, (Case("c", "n", 0.5),))


def check(path: Path) -> None:
    """`load` of whatever `path` holds: whole, in-range entries or none, at most a line."""
    began = time.monotonic()
    found, warning = load(path)
    assert time.monotonic() - began < SECONDS
    assert isinstance(warning, str) and "\n" not in warning
    assert not warning or str(path) in warning
    for key, entry in found.items():
        assert isinstance(entry, Passed) and entry.key == key and KEY.fullmatch(key)
        assert is_name(entry.shard) and entry.run and isinstance(entry.image, str)
        for seconds in (entry.finished, entry.duration, *(c.time for c in entry.cases)):
            assert isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0
        assert entry.finished <= results_record.MAX_EPOCH
        assert entry.duration <= results_record.MAX_SECONDS
        assert len(entry.cases) <= results_record.MAX_CASES
        for case in entry.cases:
            assert isinstance(case.skipped, bool)
            assert all(len(t) <= results_record.MAX_TEXT for t in (case.classname, case.name))
        json.dumps(results_record._as_json(entry), ensure_ascii=False).encode()  # writable


def then_an_add_writes_a_clean_record(path: Path) -> None:
    if path.is_file() and not path.is_symlink():
        add(path, [NEW])
        found, warning = load(path)
        assert warning == "" and found[NEW.key] == NEW


@SETTINGS
@given(data=st.data())
def test_a_damaged_record_is_read_whole_in_part_or_not_at_all(tmp_path, data):
    path = tmp_path / "results.json"
    write(path, data, VALID, results_record.RECORD_MAX)
    check(path)
    then_an_add_writes_a_clean_record(path)


@SETTINGS
@given(document=values)
def test_any_json_document_is_no_record_or_a_checked_one(tmp_path, document):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))  # NaN and lone surrogates (escaped) included
    check(path)


@SETTINGS
@given(entries=st.dictionaries(st.sampled_from([*KEYS, "x", ""]), values, max_size=4))
def test_any_entries_of_a_version_1_record_are_checked_one_by_one(tmp_path, entries):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"version": 1, "entries": entries}))
    check(path)
    then_an_add_writes_a_clean_record(path)


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_any_bytes_are_no_record_or_a_checked_one(tmp_path, data):
    path = tmp_path / "results.json"
    path.write_bytes(data)
    check(path)
