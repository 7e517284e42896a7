"""The readers of plans and state files under damaged input (hypothesis): every version
of a valid file that is changed, cut short, nested deeply or given out-of-range numbers
is read or refused in one line (a ConfigError, or for shardrun's own state a fallback
with one line on stderr), never another exception, in bounded time.

Host-only: the test image has no hypothesis. A crash here is a bug in the reader to fix
there, never a reason to catch more in the test.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardrun.config.load import load as load_config
from shardrun.distribute.worker_facts import WORKERS_MAX, WorkerFacts
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard, Volume, to_json
from shardrun.plan import partition, plan_file, timings
from shardrun.plan.expand import expand
from shardrun.plan.rerun import only_failed
from shardrun.report import history
from tests.host.foreign_json import write

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECONDS = 5.0  # per example, at most: every reader's cost is bounded
TOML = """
[[shard]]
name = "a"
command = "true"
volumes = ["./data:/data:ro"]

[[shard]]
name = "u-{index}"
count = 2
command = "echo {index}"
"""


def one_line(error: Exception) -> None:
    assert str(error) and "\n" not in str(error), repr(error)


@pytest.fixture(scope="module")
def project():
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "Dockerfile.test").write_text("FROM scratch\n")
        (root / "shards.toml").write_text(TOML)
        yield root, load_config(root / "shards.toml")


def valid_plan(cfg) -> dict:
    made = partition.make(
        expand(cfg), 2, {"a": 3.0}, {}, "sha256:" + "ab" * 32, partition.config_digest(cfg)
    )
    return {
        "schema": plan_file.SCHEMA,
        "image_id": made.image_id,
        "config": made.config,
        "expected": list(made.expected),
        "seconds": [list(s) for s in made.seconds],
        "partitions": [
            [{"name": s.name, "files": [], "options": to_json(s)} for s in p]
            for p in made.partitions
        ],
    }


@SETTINGS
@given(data=st.data())
def test_a_damaged_plan_is_read_or_refused_in_one_line(project, data):
    root, cfg = project
    path = root / "image.plan.json"
    write(path, data, valid_plan(cfg), plan_file.PLAN_MAX)
    config_shards = {s.name: s for s in expand(cfg)}
    began = time.monotonic()
    for k in (1, 2):
        try:
            share = partition.for_job(cfg, None, path, f"{k}/2", {})
        except ConfigError as exc:
            one_line(exc)
            assert str(path) in str(exc)
            continue
        assert share is not None
        assert all(s == config_shards[s.name] for s in share.shards)  # never the file's
        assert all(math.isfinite(e) and 0 <= e <= 1e7 for e in share.plan.expected)
    assert time.monotonic() - began < SECONDS


TIMINGS = {
    "durations": {"a": 2.5, "u-1": 7},
    "files": {"t/x.py": 1.0, "t/y.py": 0.25},
    "slot": {"gap": 0.3},
    "setup": {"base": 1.0, "per_dir": 0.5},
}


@SETTINGS
@given(data=st.data())
def test_a_damaged_timings_file_is_no_history_or_part_of_one(tmp_path, capsys, data):
    path = tmp_path / "timings.json"
    write(path, data, TIMINGS, timings.TIMINGS_MAX)
    capsys.readouterr()
    began = time.monotonic()
    setup = timings.load_setup(path)
    found = [
        *timings.load(path).values(),
        *timings.load_files(path).values(),
        timings.load_gap(path),
        setup.base,
        setup.per_dir,
    ]
    assert all(isinstance(s, float) and 0 <= s <= timings.MAX_SECONDS for s in found)
    assert time.monotonic() - began < SECONDS
    assert capsys.readouterr().err.count("\n") <= 1


URL = "ssh://ci@w1"
WORKERS = {
    "thin_refused": [URL],
    "codec_refused": {URL: ["gzip"]},
    "links": {
        URL: {"zstd": {"raw": 1000, "wire": 500, "seconds": 2.0, "link_seconds": 1.0, "at": 1.7e9}}
    },
}


@SETTINGS
@given(data=st.data())
def test_a_damaged_workers_file_is_no_facts_or_some(tmp_path, capsys, data):
    path = tmp_path / "workers.json"
    write(path, data, WORKERS, WORKERS_MAX)
    capsys.readouterr()
    began = time.monotonic()
    facts = WorkerFacts(path)
    facts.allows_thin(URL), facts.refused_codecs(URL), facts.describe(URL)
    for t in facts.transfers(URL).values():
        assert math.isfinite(t.rate) and t.raw >= 0 and t.seconds <= 1e7
    facts.refuse_codec(URL, "none")  # and it is written anew, whole
    assert "none" in WorkerFacts(path).refused_codecs(URL)
    assert time.monotonic() - began < SECONDS
    assert capsys.readouterr().err.count("\n") <= 1


def valid_report(root: Path) -> dict:
    shard = Shard(
        name="a",
        command=("true",),
        volumes=(Volume(str(root / "data"), "/data"),),
        files=("t/x.py",),
    )
    there = "/home/runner/work/p/.shardrun/runs/r1"
    return {
        "schema": "https://shardrun.dev/schemas/report-1.json",
        "run_id": "r1",
        "image_id": "sha256:" + "cd" * 32,
        "started": 1.7e9,
        "finished": 1.7e9 + 5,
        "exit_code": 1,
        "workers": [{"name": "local", "url": "unix:///s"}],
        "shards": [
            {
                "name": "a",
                "status": "FAIL",
                "worker": "local",
                "log": f"{there}/a.log",
                "image": "sha256:" + "cd" * 32,
                "options": to_json(shard),
                "test_cases": [{"classname": "c", "name": "t", "time": 0.5, "outcome": "failure"}],
            },
            {
                "name": "u-1",
                "status": "PASS",
                "worker": "local",
                "log": f"{there}/u-1.log",
                "options": to_json(Shard(name="u-1", command=("echo", "1"))),
            },
        ],
    }


@SETTINGS
@given(data=st.data())
def test_a_damaged_report_is_a_run_or_one_line_and_its_logs_stay_in_its_folder(project, data):
    root, cfg = project
    state = root / ".shardrun"
    folder = state / "runs" / "r1"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("a", "u-1"):
        (folder / f"{name}.log").write_text("log\n")
    write(folder / "report.json", data, valid_report(root), history.REPORT_MAX)
    latest = state / "runs" / "latest"
    if not latest.is_symlink():
        latest.symlink_to("r1")
    began = time.monotonic()
    for row in history.past_runs(state):
        if row.started is not None:
            time.localtime(row.started)  # what `runs` prints
    try:
        past = history.load(state)
    except ConfigError as exc:
        one_line(exc)
        return
    for entry in past.report["shards"]:
        try:
            log = history.shard_log(past, entry["name"])
        except ConfigError as exc:
            one_line(exc)
        else:
            assert log.parent == folder
    try:
        _, shards = only_failed(past, expand(cfg))
    except ConfigError as exc:
        one_line(exc)
    else:
        config_shards = {s.name: s for s in expand(cfg)}
        assert all(s.volumes == config_shards[s.name].volumes for s in shards)
    assert time.monotonic() - began < SECONDS
