"""The image handed from a build job to other jobs as one file, as hosted CI does it:
`build --output` in one folder with the local engine, `run --image` in a fresh copy of the
project whose only worker is another daemon (w1), sharing nothing but the file."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest

from tests.engine.conftest import shards_toml

SHARDS = """
[defaults]
network = "none"
[[shard]]
name = "s-{index}"
count = 3
command = ["cat", "/payload.txt"]
"""


def _job_copy(project, name: str) -> Path:
    """A fresh checkout of the project: its sources, none of its .shardrun state."""
    copy = project.root.parent / f"{project.root.name}-{name}"
    shutil.copytree(project.root, copy, ignore=shutil.ignore_patterns(".shardrun", "*.tar*"))
    return copy


def _shardrun(project, cwd: Path, *args: str):
    return subprocess.run(
        [sys.executable, "-m", "shardrun", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("name", ["image.tar.zst", "image.tar.gz", "image.tar"])
def test_a_partition_job_runs_the_build_jobs_image_file_on_its_own_engine(project, hosts, name):
    project.write("shards.toml", shards_toml(project, SHARDS))
    image = project.root.parent / name
    built = project.shardrun("build", "--plain", "--output", str(image))
    assert built.returncode == 0, built.stdout + built.stderr
    image_id = built.stdout.splitlines()[-2]
    assert image.is_file() and built.stdout.splitlines()[-1] == str(image)

    job = _job_copy(project, "job")
    w1 = hosts["SHARDRUN_TEST_W1_UNIX"]
    first = _shardrun(project, job, "run", "--plain", "--image", str(image), "--worker", w1)

    assert first.returncode == 0, first.stdout + first.stderr
    assert " build " not in first.stdout  # nothing was built in this job
    # Sent whole, or only the layers above the busybox base w1 may hold already.
    assert re.search(r"loaded   docker.sock: (full|thin), [0-9.]+ [KM]?B sent", first.stdout)
    engine = docker.DockerClient(base_url=w1)
    assert engine.images.get(image_id).id == image_id
    # The image is there now: the next job on this engine sends nothing.
    again = _shardrun(
        project,
        _job_copy(project, "again"),
        "run",
        "--plain",
        "--image",
        str(image),
        "--worker",
        w1,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "loaded   docker.sock: none, 0 B sent" in again.stdout
    engine.images.remove(image_id, force=True)


def test_a_truncated_or_foreign_image_file_is_one_line_and_loads_nothing(project, hosts):
    project.write("shards.toml", shards_toml(project, SHARDS))
    image = project.root.parent / "image.tar.zst"
    built = project.shardrun("build", "--plain", "--output", str(image))
    assert built.returncode == 0, built.stderr
    data = image.read_bytes()
    w1 = hosts["SHARDRUN_TEST_W1_UNIX"]
    engine = docker.DockerClient(base_url=w1)
    before = {i.id for i in engine.images.list(all=True)}
    cases = {
        "cut.tar.zst": (data[: len(data) // 2], 4, "is truncated or damaged"),
        "notes.txt": (b"not an image at all\n" * 100, 2, "not an image file"),
    }
    for file_name, (content, code, words) in cases.items():
        bad = project.root.parent / file_name
        bad.write_bytes(content)
        job = _job_copy(project, file_name.split(".")[0])
        done = _shardrun(project, job, "run", "--plain", "--image", str(bad), "--worker", w1)

        assert done.returncode == code, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and words in done.stderr
        assert list((job / ".shardrun" / "cache").iterdir()) == []  # no half file left
    assert {i.id for i in engine.images.list(all=True)} == before


def test_an_output_name_without_a_format_is_a_usage_error_before_the_build(project):
    project.write("shards.toml", shards_toml(project, SHARDS))
    done = project.shardrun("build", "--plain", "--output", "image.zip")
    assert done.returncode == 2
    assert "end it with .tar.zst (zstd), .tar.gz (gzip) or .tar (none)" in done.stderr
    assert " build " not in done.stdout


MATRIX = """
[defaults]
network = "none"
[[shard]]
name = "s-{index}"
count = 7
command = ["sh", "-c", "cat /payload.txt; sleep 0.{index}; test {index} != 7"]
"""


def test_a_matrix_of_three_jobs_runs_every_shard_exactly_once_from_one_plan(project, hosts):
    project.write("shards.toml", shards_toml(project, MATRIX))
    image = project.root.parent / "image.tar.zst"
    built = project.shardrun("build", "--plain", "--output", str(image), "--partitions", "3")
    assert built.returncode == 0, built.stdout + built.stderr
    plan = project.root.parent / "image.plan.json"
    assert built.stdout.splitlines()[-1] == str(plan)

    ran: list[str] = []
    digests = set()
    for k, worker in enumerate(("W1", "W3", "W4"), 1):
        job = _job_copy(project, f"job{k}")  # its own checkout, .shardrun and engine
        done = _shardrun(
            project,
            job,
            "run",
            "--plain",
            "--image",
            str(image),
            "--partition",
            f"{k}/3",
            "--worker",
            hosts[f"SHARDRUN_TEST_{worker}_UNIX"],
        )
        assert done.returncode in (0, 1), done.stdout + done.stderr  # s-7 fails its test
        report = json.loads(next((job / ".shardrun" / "runs").glob("2*/report.json")).read_text())
        assert report["partition"]["index"] == k and report["partition"]["total"] == 3
        digests.add(report["partition"]["plan"])
        assert report["shards"], f"partition {k} ran nothing"
        ran += [s["name"] for s in report["shards"]]
    assert sorted(ran) == [f"s-{i}" for i in range(1, 8)]  # each once, none lost
    assert len(digests) == 1

    # The merge job: only the jobs' run folders, downloaded into a fourth folder.
    merge_dir = _job_copy(project, "merge")
    for k in (1, 2, 3):
        shutil.copytree(
            next(
                (project.root.parent / f"{project.root.name}-job{k}" / ".shardrun" / "runs").glob(
                    "2*"
                )
            ),
            merge_dir / "downloads" / f"job{k}",
        )
    merged = _shardrun(project, merge_dir, "merge", "--plain", "downloads")
    assert merged.returncode == 1, merged.stdout + merged.stderr  # the worst partition's
    assert "7 shards: 6 pass, 1 fail" in merged.stdout
    report = json.loads((merge_dir / ".shardrun" / "runs" / "latest" / "report.json").read_text())
    # The same suite on one engine counts the same.
    alone = project.shardrun("run", "--plain")
    assert alone.returncode == 1, alone.stdout + alone.stderr
    one = json.loads((project.root / ".shardrun" / "runs" / "latest" / "report.json").read_text())
    assert report["exit_code"] == one["exit_code"] == 1
    assert {s["name"]: s["status"] for s in report["shards"]} == {
        s["name"]: s["status"] for s in one["shards"]
    }
    assert [p["index"] for p in report["partitions"]] == [1, 2, 3]
    assert {p["machine"] for p in report["partitions"]} == {socket.gethostname()}
    assert all(p["phases"]["distribution"] for p in report["partitions"])  # each job's load
    page = (merge_dir / ".shardrun" / "runs" / "latest" / "report.html").read_text()
    assert [page.index(f"partition {k}/3 on ") for k in (1, 2, 3)] == sorted(
        page.index(f"partition {k}/3 on ") for k in (1, 2, 3)
    )
    assert sorted(s["name"] for s in report["shards"]) == sorted(ran)
    assert all(Path(s["log"]).is_file() for s in report["shards"])  # copied, paths mended
    junit = ET.parse(merge_dir / ".shardrun" / "runs" / "latest" / "junit.xml").getroot()
    assert sorted(c.get("name") for c in junit.iter("testcase")) == sorted(ran)
    timings = json.loads((merge_dir / ".shardrun" / "timings.json").read_text())
    assert sorted(timings["durations"]) == sorted(ran)  # for the next build job's plan
    shown = _shardrun(project, merge_dir, "show")
    assert shown.returncode == 0 and "6 pass" in shown.stdout

    # A developer reproduces the failed shard from the merged run and the CI's image
    # file, on an engine of their own that has never seen the image (w2).
    w2 = hosts["SHARDRUN_TEST_W2_UNIX"]
    engine = docker.DockerClient(base_url=w2)
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.images.remove(report["image_id"], force=True)
    dev = _job_copy(project, "dev")
    merged_run = next((merge_dir / ".shardrun" / "runs").glob("merged-*"))
    repro = _shardrun(
        project,
        dev,
        "repro",
        "s-7",
        "--run",
        str(merged_run),
        "--image",
        str(image),
        "--worker",
        w2,
    )
    assert repro.returncode == 1, repro.stdout + repro.stderr  # the shard's own exit code
    assert "payload" in repro.stdout  # its output, from the image the CI ran
    assert f"as it ran in run {merged_run.name}" in repro.stderr
    assert re.search(r"loaded image.tar.zst into \S+ \((full|thin), ", repro.stderr)
    assert engine.images.get(report["image_id"])
    engine.images.remove(report["image_id"], force=True)

    # A lost job, a job downloaded twice: named, and the merge fails.
    shutil.rmtree(merge_dir / "downloads" / "job2")
    lost = _shardrun(project, merge_dir, "merge", "--plain", "downloads")
    assert lost.returncode == 4 and "partition 2 of 3 never reported" in lost.stderr
    # The same run's folder twice (an upload that followed `latest`) counts once...
    shutil.copytree(merge_dir / "downloads" / "job3", merge_dir / "downloads" / "latest")
    # ...but partition 1 run a second time is two verdicts for one partition.
    rerun = _job_copy(project, "job1-again")
    done = _shardrun(
        project,
        rerun,
        "run",
        "--plain",
        "--image",
        str(image),
        "--partition",
        "1/3",
        "--worker",
        hosts["SHARDRUN_TEST_W1_UNIX"],
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    shutil.copytree(
        next((rerun / ".shardrun" / "runs").glob("2*")), merge_dir / "downloads" / "again"
    )
    shutil.copytree(
        next((project.root.parent / f"{project.root.name}-job2" / ".shardrun" / "runs").glob("2*")),
        merge_dir / "downloads" / "job2",
    )
    twice = _shardrun(project, merge_dir, "merge", "--plain", "downloads")
    assert twice.returncode == 4 and "partition 1/3 reported twice" in twice.stderr


def test_a_job_refuses_a_plan_made_for_another_config(project):
    project.write("shards.toml", shards_toml(project, MATRIX))
    image = project.root.parent / "image.tar.zst"
    built = project.shardrun("build", "--plain", "--output", str(image), "--partitions", "2")
    assert built.returncode == 0, built.stderr
    job = _job_copy(project, "changed")
    (job / "shards.toml").write_text(shards_toml(project, MATRIX.replace("7", "8")))

    done = _shardrun(project, job, "run", "--plain", "--image", str(image), "--partition", "1/2")

    assert done.returncode == 2, done.stdout + done.stderr
    assert "was made from another shards.toml than this one" in done.stderr
    assert not (job / ".shardrun").exists()  # refused before anything was written


def test_run_image_takes_an_id_or_tag_the_build_engine_holds(project, hosts):
    """`--image` of an image already on the build engine (a CI runner that loaded it
    itself, or `docker build` by hand): nothing is built, and a worker gets it from there."""
    project.write("shards.toml", shards_toml(project, SHARDS))
    built = project.shardrun("build", "--plain")
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.splitlines()[-2]  # above the tarball's path
    local = docker.from_env()
    local.images.get(image_id).tag("shardrun-test-by-tag", "ci")
    w1 = hosts["SHARDRUN_TEST_W1_UNIX"]
    remote = docker.DockerClient(base_url=w1)
    with contextlib.suppress(docker.errors.ImageNotFound):
        remote.images.remove(image_id, force=True)
    try:
        job = _job_copy(project, "bytag")
        done = _shardrun(
            project, job, "run", "--plain", "--image", "shardrun-test-by-tag:ci", "--worker", w1
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert " build " not in done.stdout and "3 shards: 3 pass" in done.stdout
        report = json.loads((job / ".shardrun" / "runs" / "latest" / "report.json").read_text())
        assert report["image_id"] == image_id
        assert remote.images.get(image_id)  # loaded from the build engine

        by_id = _shardrun(project, job, "run", "--plain", "--image", image_id[7:19])
        assert by_id.returncode == 0, by_id.stdout + by_id.stderr

        missing = _shardrun(project, job, "run", "--plain", "--image", "no-such-image:here")
        assert missing.returncode == 2
        assert (
            missing.stderr.count("\n") == 1 and "nor an image of that ID or tag" in missing.stderr
        )
    finally:
        local.images.remove("shardrun-test-by-tag:ci")
        with contextlib.suppress(docker.errors.ImageNotFound):
            remote.images.remove(image_id, force=True)


# Seconds each shard sleeps, s-1 .. s-9: dealt out by name with no timings, partition 1
# gets 5.2 s of the 8.6 s, the others 1.4 and 2.0.
SKEWED = [2.4, 0.2, 0.4, 1.6, 0.4, 0.6, 1.2, 0.8, 1.0]


def _matrix_round(project, hosts, tag: str, timings: Path | None) -> tuple[Path, list[float]]:
    """One CI run: a build job (with the timings the CI cache restored), three partition
    jobs on their own engines, one slot each, and a merge job: its folder, and each
    partition's seconds of shards."""
    build = _job_copy(project, f"{tag}-build")
    if timings is not None:
        (build / ".shardrun").mkdir()
        shutil.copy(timings, build / ".shardrun" / "timings.json")
    image = build / "image.tar.zst"
    built = _shardrun(
        project, build, "build", "--plain", "--output", str(image), "--partitions", "3"
    )
    assert built.returncode == 0, built.stdout + built.stderr
    merge_dir = _job_copy(project, f"{tag}-merge")
    seconds = []
    for k, worker in enumerate(("W1", "W3", "W4"), 1):
        job = _job_copy(project, f"{tag}-job{k}")
        done = _shardrun(
            project,
            job,
            "run",
            "--plain",
            "--jobs",
            "1",
            "--image",
            str(image),
            "--partition",
            f"{k}/3",
            "--worker",
            hosts[f"SHARDRUN_TEST_{worker}_UNIX"],
        )
        assert done.returncode == 0, done.stdout + done.stderr
        run = next((job / ".shardrun" / "runs").glob("2*"))
        seconds.append(
            sum(s["duration"] for s in json.loads((run / "report.json").read_text())["shards"])
        )
        shutil.copytree(run, merge_dir / "downloads" / f"job{k}")
    merged = _shardrun(project, merge_dir, "merge", "--plain", "downloads")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    return merge_dir, seconds


def test_after_one_recorded_matrix_run_the_next_plan_is_balanced(project, hosts):
    toml = '[defaults]\nnetwork = "none"\n' + "".join(
        f'[[shard]]\nname = "s-{i}"\ncommand = ["sleep", "{t}"]\n' for i, t in enumerate(SKEWED, 1)
    )
    project.write("shards.toml", shards_toml(project, toml))
    first_merge, first = _matrix_round(project, hosts, "first", None)
    assert max(first) > 1.5 * statistics.mean(first)  # by name, before any timings: skewed

    # The next build job restores what the merge job saved (CI's cache).
    _, second = _matrix_round(project, hosts, "second", first_merge / ".shardrun" / "timings.json")
    assert max(second) <= 1.15 * statistics.mean(second), second
