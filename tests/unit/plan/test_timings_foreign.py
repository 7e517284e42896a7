"""shardrun.plan.timings reading a timings file that anything may have replaced: a value
out of range is left out, a file that cannot be read is no history with one line on
stderr, and nothing outside its folder is ever read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shardrun.plan import timings
from shardrun.plan.affinity import NO_SETUP, Setup

GOOD = {
    "durations": {"a": 2.5, "b": 7},
    "files": {"t/x.py": 1.0},
    "slot": {"gap": 0.3},
    "setup": {"base": 1.0, "per_dir": 0.5},
}


def test_seconds_out_of_range_are_left_out_and_the_rest_kept(tmp_path: Path):
    path = tmp_path / "timings.json"
    path.write_text(
        json.dumps(
            {
                "durations": {
                    "a": 2.5,
                    "huge": 1e308,
                    "neg": -1,
                    "year": 1e7 + 1,
                    "s": "3",
                    "t": True,
                },
                "files": {"t/x.py": 1.0, "t/y.py": 1e300},
                "slot": {"gap": 1e308},
                "setup": {"base": -5, "per_dir": 0.5},
            }
        )
    )
    assert timings.load(path) == {"a": 2.5}
    assert timings.load_files(path) == {"t/x.py": 1.0}
    assert timings.load_gap(path) == 0.0
    assert timings.load_setup(path) == Setup(0.0, 0.5)


def test_a_link_out_of_its_folder_is_not_read(tmp_path: Path, capsys):
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(GOOD))
    state = tmp_path / ".shardrun"
    state.mkdir()
    (state / "timings.json").symlink_to(outside)
    assert timings.load(state / "timings.json") == {}
    assert timings.load_files(state / "timings.json") == {}
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # once, however many sections are read
    assert err.startswith(f"shardrun: ignoring {state / 'timings.json'}: ")
    assert err.endswith("; it is rewritten by the next run\n")


@pytest.mark.parametrize(
    "make, phrase",
    [
        (lambda p: os.mkfifo(p), "a FIFO, not a regular file"),
        (lambda p: p.mkdir(), "a folder, not a regular file"),
        (lambda p: p.write_text('{"durations": ' * 10 + "{}" + "}" * 10), "nested deeper than 4"),
        (lambda p: p.write_text("[" * 100_000), "nested deeper"),
        (lambda p: p.write_text('{"durations": {"a": NaN}}'), "NaN is not a number JSON allows"),
        (lambda p: (p.touch(), os.truncate(p, timings.TIMINGS_MAX + 1)), "over the 8.0 MB"),
    ],
)
def test_a_file_that_cannot_be_read_is_no_history_in_one_line(tmp_path: Path, capsys, make, phrase):
    path = tmp_path / "timings.json"
    make(path)
    assert timings.load(path) == {} and timings.load_setup(path) == NO_SETUP
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and phrase in err


def test_a_broken_file_is_rewritten_whole_by_the_next_save(tmp_path: Path):
    path = tmp_path / "timings.json"
    path.write_text('{"durations": {"a": 1e308, "b": 2}, "files": {"f": -3}}')
    timings.save(path, timings.load(path))
    assert json.loads(path.read_text()) == {"durations": {"b": 2.0}}
