"""The generated GitHub workflow across three runs, its own `shardrun` lines run in order
as its jobs would run them: every job in a fresh checkout on a fresh engine (f1, a new
data root: no build cache, no images but the base), carrying between jobs only what the
workflow carries (the image file and the plan as artifacts, the partitions' run folders
to the merge, and the caches: the last image file, timings.json and results.json).

Run 1 builds cold and records; run 2, after a change to one source file, takes the
dependency step from the cache (its marker is run 1's) and runs every shard; run 3, with
no change, runs no partition job and no shard, and its merged report holds every shard as
reused from run 2, with every test case in the merged junit.xml.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import yaml
import zstandard

from tests.engine.conftest import hosts_script, shards_toml
from tests.engine.test_warm_build import DOCKERFILE, base_file  # noqa: F401 - a fixture

PARTITIONS = 2
CASES = "<testsuite><testcase classname='t' name='{index}'/></testsuite>"
SHARDS = f"""
[defaults]
network = "none"
reuse = true
junit = "/tmp/junit.xml"
[[shard]]
name = "s-{{index}}"
count = 3
command = ["sh", "-c", "cat /deps-marker /src.txt && echo \\"{CASES}\\" > /tmp/junit.xml"]
"""
CACHED = (".shardrun/timings.json", ".shardrun/results.json")


def _lines(workflow: str) -> dict[str, str]:
    """Each job's one `shardrun` line, as the workflow writes it."""
    jobs = yaml.safe_load(workflow)["jobs"]
    found = {}
    for job, spec in jobs.items():
        runs = [s["run"] for s in spec["steps"] if s.get("run", "").startswith("shardrun ")]
        assert len(runs) == 1, (job, runs)
        found[job] = runs[0]
    return found


def _fresh(base: Path) -> str:
    url = hosts_script("fresh f1")["SHARDRUN_TEST_F1_UNIX"]
    client = docker.DockerClient(base_url=url)
    client.images.load(base.read_bytes())
    client.close()
    return url


def _job(line: str, cwd: Path, url: str, env: dict | None = None) -> subprocess.CompletedProcess:
    argv = line.split()
    assert argv[0] == "shardrun"
    return subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "shardrun", *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DOCKER_HOST": url, **(env or {})},
    )


def _checkout(sources: Path, to: Path) -> Path:
    shutil.copytree(sources, to, ignore=shutil.ignore_patterns(".shardrun"))
    return to


def _carry(names: tuple[str, ...], src: Path, dst: Path) -> None:
    for name in names:
        if (src / name).exists():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)


def _pipeline(project, lines: dict[str, str], cache: Path, work: Path, base: Path) -> dict:
    """One run of the workflow; `cache` is what actions/cache keeps between runs."""
    build = _checkout(project.root, work / "build")
    _carry((*CACHED, "image.tar.zst"), cache, build)
    outputs = work / "github-output"
    outputs.touch()
    built = _job(lines["build"], build, _fresh(base), {"GITHUB_OUTPUT": str(outputs)})
    assert built.returncode == 0, built.stdout + built.stderr
    _carry(("image.tar.zst",), build, cache)  # actions/cache/save of the image
    partitions = json.loads(outputs.read_text().split("partitions=", 1)[1].splitlines()[0])
    downloads = work / "partitions"  # download-artifact makes it only when there is one
    containers = 0
    for k in partitions:
        job = _checkout(project.root, work / f"p{k}")
        _carry(("image.tar.zst", "image.plan.json"), build, job)
        line = lines["shards"].replace("${{ matrix.partition }}", str(k))
        ran = _job(line, job, _fresh(base))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        containers += ran.stdout.count("start    ")
        shutil.copytree(job / ".shardrun" / "runs" / "latest", downloads / f"p{k}")
    merge = _checkout(project.root, work / "merge")
    if downloads.exists():  # download-artifact's `path: partitions`, in the workspace
        shutil.move(downloads, merge / "partitions")
    _carry(CACHED, cache, merge)
    _carry(("image.plan.json",), build, merge)
    merged = _job(lines["merge"], merge, "unix:///nonexistent.sock")  # no engine needed
    assert merged.returncode == 0, merged.stdout + merged.stderr
    _carry(CACHED, merge, cache)  # actions/cache/save of the state
    report = json.loads((merge / ".shardrun" / "runs" / "latest" / "report.json").read_text())
    cases = ET.parse(merge / ".shardrun" / "runs" / "latest" / "junit.xml").getroot()
    return {
        "build": built.stdout,
        "partitions": partitions,
        "containers": containers,
        "reused": {s["name"]: s["reused_from"] for s in report["shards"]},
        "run_id": report["run_id"],
        "cases": sorted(c.get("name") for c in cases.iter("testcase") if c.get("classname") == "t"),
        "marker": _marker(build),
    }


def _marker(build: Path) -> str:
    """The dependency step's marker in the image the build job wrote."""
    plan = json.loads((build / "image.plan.json").read_text())
    url = _fresh_url()
    client = docker.DockerClient(base_url=url)
    client.images.load(_unzstd(build))  # dockerd 20.10 loads gzip, not zstd
    out = client.containers.run(plan["image_id"], ["cat", "/deps-marker"], remove=True)
    client.close()
    return out.decode()


def _fresh_url() -> str:
    return hosts_script("fresh f1")["SHARDRUN_TEST_F1_UNIX"]


def _unzstd(build: Path) -> bytes:
    with (build / "image.tar.zst").open("rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f).read()


def test_the_workflows_lines_build_warm_and_reuse_across_three_runs(
    project,
    hosts,
    base_file,  # noqa: F811 - the fixture
    tmp_path,
):
    from shardrun.ci.github import Options, workflow

    text = workflow(Options(PARTITIONS, install="pip install ."))
    lines = _lines(text)
    project.write("Dockerfile.test", DOCKERFILE)
    project.write("src.txt", "one\n")
    project.write("shards.toml", shards_toml(project, SHARDS))
    cache = tmp_path / "cache"
    cache.mkdir()

    first = _pipeline(project, lines, cache, tmp_path / "run1", base_file)
    assert first["partitions"] == [1, 2] and first["containers"] == 3
    assert "warning  --cache-from image.tar.zst: no such file" in first["build"]
    assert set(first["reused"].values()) == {None}
    assert first["cases"] == ["1", "2", "3"]

    project.write("src.txt", "two\n")
    second = _pipeline(project, lines, cache, tmp_path / "run2", base_file)
    assert "cached   [2/3] RUN sleep 1" in second["build"], second["build"]
    assert second["marker"] == first["marker"]  # the dependency step did not run again
    assert second["containers"] == 3 and set(second["reused"].values()) == {None}

    third = _pipeline(project, lines, cache, tmp_path / "run3", base_file)
    assert third["partitions"] == [] and third["containers"] == 0
    assert third["reused"] == {f"s-{i}": second["run_id"] for i in (1, 2, 3)}
    assert third["cases"] == ["1", "2", "3"]  # the merged JUnit holds every case
