"""`shardrun merge` of a partition whose report.json was mutated, truncated, nested deep
or blown up: it merges, or stops with one line and exit 2 or 4; never exit 70, never a
hang, never a byte of a file outside the partition folders in what it writes or prints,
never a write into its inputs. Through the CLI in this process (typer's CliRunner), a
valid matrix built as the run writes it (partitions.py)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from shardrun.cli.app import app
from tests.host import foreign_json
from tests.host.report.partitions import MACHINE, matrix, run_id

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOKEN = secrets.token_hex(16)
ALLOWED = {0, 1, 2, 4}
NEST = "nested-here"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """A valid matrix (4 shards on 2 jobs, one failing) and, outside it, a secret file
    that is valid JUnit and a log line at once."""
    root = tmp_path_factory.mktemp("merge-fuzz")
    downloads = matrix(root, shards=4, jobs=2, failing=("s1",))
    secret = root / "host" / "secret.xml"
    secret.parent.mkdir()
    secret.write_text(
        f'<testsuites><testsuite><testcase name="{TOKEN}"><failure message="{TOKEN}">'
        f"{TOKEN}</failure></testcase></testsuite></testsuites>\n{TOKEN}\n"
    )
    return downloads, secret


def _hostile_paths(secret: Path) -> list[str]:
    there = f"{MACHINE}/{run_id(1)}"
    return [
        str(secret),
        f"{there}/../../../../../../../..{secret}",
        f"{there}/s1.log/../../..{secret}",
        "/dev/zero",
        "/etc/passwd",
        f"{there}/hostlink",
        f"{there}/hostlink/secret.xml",
        f"{there}/s1/artifacts/zero",
        f"{there}/",
        there,
    ]


def values(secret: Path) -> st.SearchStrategy:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([-1, 0, 2**31, 2**63, 10**300, 1e308, -0.0, 1e-300]),
        st.floats(),
        st.text(max_size=30),
        st.sampled_from(["PASS", "FAIL", "NOT RUN", "[/]", "[red]x", "\n::error::x", "\x1b[2J"]),
        st.sampled_from(_hostile_paths(secret)),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _set(doc: Any, where: tuple, value: Any) -> Any:
    if not where:
        return value
    *parents, last = where
    holder = doc
    for key in parents:
        holder = holder[key]
    holder[last] = value
    return doc


def _drop(doc: Any, where: tuple) -> Any:
    if where:
        *parents, last = where
        holder = doc
        for key in parents:
            holder = holder[key]
        del holder[last]
    return doc


@st.composite
def mutated(draw, report: dict, secret: Path) -> bytes:
    """report.json, changed as someone with the file in hand could change it."""
    doc = copy.deepcopy(report)
    nests: list[int] = []
    for _ in range(draw(st.integers(1, 2))):
        places = foreign_json.places(doc)
        where = draw(st.sampled_from(places))
        how = draw(st.sampled_from(["set", "set", "path", "path", "path", "drop", "nest", "huge"]))
        event(how)
        shards = doc.get("shards") if isinstance(doc, dict) else None
        if (
            how == "path"
            and isinstance(shards, list)
            and all(isinstance(e, dict) for e in shards)
            and shards
        ):  # a type that passes: what it names is the test
            shard = draw(st.integers(0, len(shards) - 1))
            key = draw(st.sampled_from(["log", "junit", "artifacts"]))
            path = draw(st.sampled_from(_hostile_paths(secret)))
            shards[shard][key] = [path] if key == "artifacts" else path
        elif how == "set":
            doc = _set(doc, where, draw(values(secret)))
        elif how == "drop":
            doc = _drop(doc, where)
        elif how == "nest":  # spliced into the text: too deep for json.dumps
            depth = draw(st.sampled_from([2, 31, 33, 1000, 10_000]))
            doc = _set(doc, where, NEST)
            nests.append(depth)
        else:  # a long text: cut where it is shown, or the whole file refused
            doc = _set(doc, where, "x" * draw(st.sampled_from([1_001, 2_000_000, 33_000_000])))
    text = json.dumps(doc).encode()
    for depth in nests:
        text = text.replace(f'"{NEST}"'.encode(), b"[" * depth + b'"deep"' + b"]" * depth, 1)
    cut = draw(st.sampled_from([None] * 8 + [0, 1, len(text) // 2, len(text) - 1]))
    return text if cut is None else text[:cut]


def _merge(cwd: Path, *args: str):
    with contextlib.chdir(cwd):
        return CliRunner().invoke(
            app,
            ["merge", "--plain", *args],
            env={"GITHUB_STEP_SUMMARY": None, "GITHUB_ACTIONS": "true"},
        )


def _listing(root: Path) -> list[str]:
    return sorted(str(Path(d, f)) for d, _, files in os.walk(root) for f in files)


@FUZZ
@given(data=st.data())
def test_a_mutated_partition_report_merges_or_is_one_line_and_exit_2_or_4(world, data):
    downloads, secret = world
    report = json.loads((downloads / "job1" / run_id(1) / "report.json").read_text())
    text = data.draw(mutated(report, secret))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        inputs = Path(shutil.copytree(downloads, root / "downloads", symlinks=True))
        part = inputs / "job1" / run_id(1)
        (part / "report.json").write_bytes(text)
        (part / "hostlink").symlink_to(secret.parent, target_is_directory=True)
        (part / "s1" / "artifacts" / "zero").symlink_to("/dev/zero")
        before = _listing(inputs)

        started = time.monotonic()
        done = _merge(root, "--output", str(root / "out"), str(inputs))
        seconds = time.monotonic() - started

        event(f"exit {done.exit_code}")
        assert done.exit_code in ALLOWED, (done.exit_code, done.stderr[-2000:], done.exception)
        assert seconds < 20
        errors = [line for line in done.stderr.splitlines() if line.startswith("shardrun: error:")]
        if errors:
            assert done.stderr.splitlines() == errors, done.stderr
            assert done.exit_code in (2, 4)
        assert TOKEN not in done.stdout + done.stderr
        for path in _listing(root / "out") + _listing(root / ".shardrun"):
            assert TOKEN.encode() not in Path(path).read_bytes(), path
        assert _listing(inputs) == before
