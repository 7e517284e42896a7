"""Partition run folders as `shardrun run --partition K/N` leaves them, for merge tests:
report.json written by the run's own report writer (json_report.to_json), with the paths
as the job's machine had them, and each shard's log, JUnit file and artifact where the
run puts them (<shard>.log, <shard>/junit.xml, <shard>/artifacts/...)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shardrun.model.results import ShardResult, Status
from shardrun.model.shard import Shard
from shardrun.report.json_report import to_json
from shardrun.report.summary import RunSummary, WorkerReport

MACHINE = "/home/runner/work/demo/demo/.shardrun/runs"  # where a job's runs were
PLAN = "ab" * 32


def run_id(index: int) -> str:
    return f"20261208-0100{index:02d}-p{index:05d}"


def junit_text(case: str, failed: bool) -> str:
    failure = '<failure message="boom">assert 1 == 2</failure>' if failed else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite>'
        f'<testcase classname="tests.test_x" name="{case}" time="0.5">{failure}</testcase>'
        "</testsuite></testsuites>\n"
    )


def partition_run(
    root: Path, index: int, total: int, names: list[str], failing: tuple[str, ...] = ()
) -> Path:
    """Partition `index` of `total` having run the shards `names` (empty: a job the plan
    gave nothing), those in `failing` failed. Returns its run folder."""
    rid = run_id(index)
    folder = root / f"job{index}" / rid
    folder.mkdir(parents=True)
    there = f"{MACHINE}/{rid}"
    results = []
    for n, name in enumerate(names):
        failed = name in failing
        (folder / f"{name}.log").write_text(f"{name} line 1\n{name} last line\n")
        (folder / name / "artifacts" / "out").mkdir(parents=True)
        (folder / name / "junit.xml").write_text(junit_text(f"test_{name}", failed))
        (folder / name / "artifacts" / "out" / "cov.txt").write_text(f"{name} 91%\n")
        results.append(
            ShardResult(
                name=name,
                status=Status.FAIL if failed else Status.PASS,
                exit_code=1 if failed else 0,
                started=1000.0 + index + n,
                finished=1002.0 + index + n,
                worker="local",
                slot=1,
                log_path=f"{there}/{name}.log",
                attempt=1,
                artifacts=(f"{there}/{name}/artifacts/out/cov.txt",),
                junit=f"{there}/{name}/junit.xml",
                image="sha256:" + "cd" * 32,
            )
        )
    summary = RunSummary(
        run_id=rid,
        project="demo",
        image_id="sha256:" + "cd" * 32,
        started=1000.0 + index,
        finished=1010.0 + index,
        results=tuple(results),
        workers=(WorkerReport("local", "unix:///var/run/docker.sock", 2, load="none"),)
        if names
        else (),
        shards=tuple(Shard(name=name, command=("pytest", "-q")) for name in names),
        partition={"index": index, "total": total, "plan": PLAN, "machine": f"runner-{index}"},
    )
    (folder / "report.json").write_text(json.dumps(to_json(summary), indent=2))
    return folder


def matrix(root: Path, shards: int, jobs: int, failing: tuple[str, ...] = ()) -> Path:
    """`shards` shards s1..sN dealt one per job over `jobs` jobs (the last ones empty when
    there are more jobs than shards), downloaded into root/downloads."""
    downloads = root / "downloads"
    for k in range(1, jobs + 1):
        names = [f"s{i}" for i in range(k, shards + 1, jobs)]
        partition_run(downloads, k, jobs, names, failing)
    return downloads


def shardrun(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a process of its own, with no step summary to append to."""
    environ = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY",)}
    return subprocess.run(  # noqa: PLW1510 - the exit code is what is tested
        [sys.executable, "-m", "shardrun", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**environ, "DOCKER_HOST": "unix:///nonexistent.sock", **(env or {})},
        timeout=120,
    )
