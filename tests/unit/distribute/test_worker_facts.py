"""shardrun.distribute.worker_facts reading a workers.json that anything may have
replaced: damaged facts are left out, an unreadable file is no facts with one line on
stderr and is written anew with the next fact, and nothing outside its folder is read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shardrun.distribute.worker_facts import WORKERS_MAX, Transfer, WorkerFacts

URL = "ssh://ci@w1"
LINK = {"raw": 1000, "wire": 500, "seconds": 2.0, "link_seconds": 1.0, "at": 1.7e9}


def test_only_facts_of_the_right_shape_and_range_are_kept(tmp_path: Path):
    path = tmp_path / "workers.json"
    path.write_text(
        json.dumps(
            {
                "thin_refused": [URL, 3, "", "x" * 5000],
                "codec_refused": {URL: ["gzip", None], "other": "zstd"},
                "links": {
                    URL: {
                        "zstd": LINK,
                        "gzip": {**LINK, "seconds": 1e308},
                        "none": {**LINK, "raw": -1},
                        "lz4": {**LINK, "wire": "big"},
                        "xz": [1],
                    },
                    "bad": 3,
                },
            }
        )
    )
    facts = WorkerFacts(path)
    assert not facts.allows_thin(URL) and facts.allows_thin("3")
    assert facts.refused_codecs(URL) == {"gzip"} and facts.refused_codecs("other") == set()
    assert facts.transfers(URL) == {"zstd": Transfer("zstd", 1000, 500, 2.0, 1.0, 1.7e9)}
    assert facts.describe(URL) == "zstd, 500 B/s; gzip refused"


@pytest.mark.parametrize(
    "make, phrase",
    [
        (lambda p: os.mkfifo(p), "a FIFO, not a regular file"),
        (lambda p: p.write_text('{"links": ' * 7 + "{}" + "}" * 7), "nested deeper than 6"),
        (lambda p: p.write_text("[" * 100_000), "nested deeper"),
        (lambda p: p.write_text('{"thin_refused": ["a"]'), "not JSON"),
        (lambda p: (p.touch(), os.truncate(p, WORKERS_MAX + 1)), "over the 4.0 MB"),
    ],
)
def test_an_unreadable_file_is_no_facts_in_one_line_and_written_anew(
    tmp_path: Path, capsys, make, phrase
):
    path = tmp_path / "workers.json"
    make(path)
    facts = WorkerFacts(path)
    assert facts.allows_thin(URL) and facts.transfers(URL) == {}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and phrase in err and str(path) in err
    facts.refuse_thin(URL)  # written anew: a FIFO too is replaced by a regular file
    assert json.loads(path.read_text())["thin_refused"] == [URL]


def test_a_link_out_of_the_state_folder_is_not_read(tmp_path: Path, capsys):
    outside = tmp_path / "secret.json"
    outside.write_text(json.dumps({"thin_refused": [URL]}))
    state = tmp_path / ".shardrun"
    state.mkdir()
    (state / "workers.json").symlink_to(outside)
    assert WorkerFacts(state / "workers.json").allows_thin(URL)
    assert "ignoring" in capsys.readouterr().err
    WorkerFacts(state / "workers.json").refuse_codec(URL, "gzip")
    assert json.loads(outside.read_text()) == {"thin_refused": [URL]}  # never written through
