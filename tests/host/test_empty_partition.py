"""A matrix with more partition jobs than shards: the jobs the plan gives nothing still
write their run folder and report, through the real CLI, with no engine and without
reading the image file, so that `shardrun merge` tells them from a job that was lost.

The jobs that do have shards run the real workflow over a fake engine (no Docker), in
their own copies of the project, as CI jobs on other machines would."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import anyio
import jsonschema
import pytest

from shardrun.config.load import load
from shardrun.plan import partition
from shardrun.plan.expand import expand
from shardrun.report import json_report
from shardrun.run import workflow
from shardrun.run.request import RunRequest
from tests.host.test_cli_errors import shardrun
from tests.host.test_workflow_fake import IMAGE, PROJECT, fakes, worker  # noqa: F401

SHARDS = 5
JOBS = 7
TOML = f'project = "{PROJECT}"\n' + "".join(
    f'[[shard]]\nname = "s{i}"\ncommand = "true"\n' for i in range(1, SHARDS + 1)
)


@pytest.fixture(autouse=True)
def no_step_summary(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def matrix(tmp_path) -> Path:
    """The build job's outputs for 5 shards on 7 jobs: the plan, and an image file that
    is no archive at all (an empty partition's job must not need to read it)."""
    source = tmp_path / "project"
    source.mkdir()
    (source / "Dockerfile.test").write_text("FROM scratch\n")
    (source / "shards.toml").write_text(TOML)
    cfg = load(source / "shards.toml")
    plan = partition.make(expand(cfg), JOBS, {}, {}, IMAGE.id, partition.config_digest(cfg))
    assert [len(part) for part in plan.partitions] == [1] * SHARDS + [0] * (JOBS - SHARDS)
    partition.save(plan, tmp_path / "image.plan.json")
    (tmp_path / "image.tar.zst").write_bytes(b"not read by a job with nothing to run\n")
    return tmp_path


def _job(matrix: Path, name: str) -> Path:
    """A fresh checkout of the project, as a CI job has it."""
    return Path(shutil.copytree(matrix / "project", matrix / name))


def _run_dir(job: Path) -> Path:
    [run] = [p for p in (job / ".shardrun" / "runs").iterdir() if p.name != "latest"]
    return run


def _empty_job(matrix: Path, k: int, *args: str) -> subprocess.CompletedProcess:
    image = str(matrix / "image.tar.zst")
    return shardrun(
        _job(matrix, f"job{k}"),
        "run",
        "--plain",
        "--image",
        image,
        "--partition",
        f"{k}/{JOBS}",
        *args,
    )


def _fake_job(matrix: Path, k: int, fake) -> None:
    """Partition K run by the real workflow on a fake engine, as `run --partition` would."""
    root = _job(matrix, f"job{k}")
    cfg = load(root / "shards.toml")
    share = partition.for_job(cfg, None, matrix / "image.plan.json", f"{k}/{JOBS}")
    assert share is not None and share.shards
    request = RunRequest(
        cfg, share.shards, partition={**share.report_entry, "machine": f"runner-{k}"}
    )
    prepared = workflow.Prepared(IMAGE.id, worker(fake), [worker(fake)], unreachable=())

    async def main() -> None:
        with anyio.fail_after(10):
            await workflow.run_shards(request, prepared, lambda event: None, anyio.Event())

    anyio.run(main)


def test_an_empty_partitions_job_records_a_whole_run_without_an_engine(matrix):
    done = _empty_job(matrix, 7, "--junit", "out/junit.xml")

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert "partition 7/7 of " in done.stdout and "nothing to run" in done.stdout
    job = matrix / "job7"
    run = _run_dir(job)
    assert (job / ".shardrun" / "runs" / "latest").readlink() == Path(run.name)
    assert sorted(p.name for p in run.iterdir()) == [
        "junit.xml",
        "report.html",
        "report.json",
        "summary.md",
    ]
    report = json.loads((run / "report.json").read_text())
    plan = partition.load(matrix / "image.plan.json")
    assert report["partition"] == {
        "index": 7,
        "total": JOBS,
        "plan": plan.digest,
        "machine": socket.gethostname(),
    }
    assert (report["run_id"], report["image_id"]) == (run.name, IMAGE.id)
    assert (report["exit_code"], report["shards"], report["workers"]) == (0, [], [])
    assert report["started"] <= report["finished"]
    schema = json.loads((Path(json_report.__file__).parent / "schema.json").read_text())
    jsonschema.validate(report, schema)
    suites = ET.parse(run / "junit.xml").getroot()
    assert (suites.get("tests"), suites.get("failures")) == ("0", "0")
    assert (job / "out" / "junit.xml").read_text() == (run / "junit.xml").read_text()
    assert list((job / ".shardrun" / "cache").iterdir()) == []  # nothing loaded


def test_an_empty_partitions_job_loads_no_docker_client(matrix):
    """What keeps it well under a second, and shows it contacts no engine."""
    job = _job(matrix, "job6")

    def imports(k: int) -> tuple[int, list[str]]:
        # -X importtime names each module on stderr as it is imported, however the CLI
        # exits (an error ends it with os._exit).
        done = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-m",
                "shardrun",
                "run",
                "--plain",
                "--image",
                str(matrix / "image.tar.zst"),
                "--partition",
                f"{k}/{JOBS}",
            ],
            cwd=job,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"},
        )
        names = [ln.rsplit("|", 1)[1].strip() for ln in done.stderr.splitlines() if "|" in ln]
        return done.returncode, names

    code, names = imports(6)
    assert code == 0 and "shardrun.cli.run" in names
    assert "docker" not in names and "shardrun.run.workflow" not in names
    # The same probe sees it when a run does need an engine (that this file is none
    # is found only after the workflow is loaded).
    code, names = imports(1)
    assert code != 0 and "docker" in names


def test_an_empty_partitions_job_still_refuses_a_plan_of_another_config(matrix):
    job = _job(matrix, "job6")
    (job / "shards.toml").write_text(TOML.replace('"s5"', '"s5b"'))
    done = shardrun(
        job, "run", "--plain", "--image", str(matrix / "image.tar.zst"), "--partition", f"6/{JOBS}"
    )
    assert done.returncode == 2
    assert "was made from another shards.toml than this one" in done.stderr
    assert not (job / ".shardrun").exists()


def test_five_shards_on_seven_jobs_merge_into_one_verdict(matrix, fakes):  # noqa: F811
    fake = fakes("w")
    fake.script("s3", exit_code=1, output=b"1 failed\n")
    for k in range(1, SHARDS + 1):
        _fake_job(matrix, k, fake)
    for k in range(SHARDS + 1, JOBS + 1):
        done = _empty_job(matrix, k)
        assert done.returncode == 0, done.stdout + done.stderr
    merge_dir = matrix / "merge"
    for k in range(1, JOBS + 1):
        shutil.copytree(_run_dir(matrix / f"job{k}"), merge_dir / "downloads" / f"job{k}")

    merged = shardrun(merge_dir, "merge", "--plain", "downloads")

    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert "5 shards: 4 pass, 1 fail" in merged.stdout
    assert [line.split()[1] for line in merged.stdout.splitlines() if " FAIL " in line] == ["s3"]
    report = json.loads((merge_dir / ".shardrun" / "runs" / "latest" / "report.json").read_text())
    assert sorted(s["name"] for s in report["shards"]) == [f"s{i}" for i in range(1, SHARDS + 1)]
    assert {s["name"]: s["status"] for s in report["shards"]}["s3"] == "FAIL"
    parts = {p["index"]: p for p in report["partitions"]}
    assert sorted(parts) == list(range(1, JOBS + 1))
    for k in (6, 7):
        assert (parts[k]["exit_code"], parts[k]["workers"]) == (0, [])
        assert parts[k]["machine"] == socket.gethostname()
    page = (merge_dir / ".shardrun" / "runs" / "latest" / "report.html").read_text()
    assert "partition 7/7 on " in page

    # A job that really was lost is still named.
    shutil.rmtree(merge_dir / "downloads" / "job7")
    lost = shardrun(merge_dir, "merge", "--plain", "downloads")
    assert lost.returncode == 4 and "partition 7 of 7 never reported" in lost.stderr
