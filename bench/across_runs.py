"""Across runs (issue 27): the origin workflow's table on this machine.

A hosted CI matrix: a build job, 4 partition jobs and a merge job, each on a **fresh
engine** (f1: dockerd 20.10 with a new, empty data root, given only the base image) in a
fresh checkout that gets only the files a CI carries: the image file and the plan (an
artifact), and the caches (the previous image file; timings.json and results.json). The
Dockerfile has a dependency step of DEPS seconds (a package install) and a source COPY
after it; 8 shards with `reuse = true`.

Each round, interleaved:
- today: the shardrun before issue 27 (--src, a `git archive` of it): a cold build and
  every shard, whatever the caches hold;
- cold: this shardrun on a first run (no caches): must be no slower than today;
- change: the next run after one source file changed, with the caches of `cold`;
- same: the run after that with no change, with the caches of `change`;
- warm rebuild: the same source change built on an engine that still holds its build
  cache, plus loading the previous image file into a fresh engine (the target's base).

Runner time is the sum of the jobs' wall times (the shardrun commands; a fresh engine's
start and the base image's load are the runner's, the same on both sides, and left out).

    python3 bench/across_runs.py --src DIR [--rounds N] [--deps SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import busybox

PARTITIONS = 4
SHARDS = """project = "across-runs-bench"
[image]
build-args = {{ BASE_IMAGE = "{base}" }}
[defaults]
network = "none"
reuse = true
[[shard]]
name = "unit-{{index}}"
count = 8
command = ["sh", "-c", "sleep 2; cat /src.txt"]
"""
DOCKERFILE = """ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
RUN sleep {deps} && date +%s%N > /deps-marker
COPY src.txt /src.txt
"""
CACHED = (".shardrun/timings.json", ".shardrun/results.json")


class Matrix:
    """One CI pipeline's jobs, as a hosted runner would run them."""

    def __init__(self, src: Path, sources: Path, base_file: Path, reuse: bool) -> None:
        self.src, self.sources, self.base_file, self.reuse = src, sources, base_file, reuse

    def fresh_engine(self) -> str:
        out = subprocess.run(
            [str(ROOT / "scripts" / "worker-hosts"), "fresh", "f1"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        url = out.strip().split("=", 1)[1]
        subprocess.run(
            ["docker", "-H", url, "load", "-q", "-i", str(self.base_file)],
            check=True,
            capture_output=True,
        )
        return url

    def checkout(self, job: str, work: Path) -> Path:
        folder = work / job
        shutil.copytree(self.sources, folder)
        if not self.reuse:  # today's shardrun has no such key
            toml = folder / "shards.toml"
            toml.write_text(toml.read_text().replace("reuse = true\n", ""))
        return folder

    def shardrun(self, cwd: Path, *args: str, env: dict | None = None) -> tuple[float, str]:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "shardrun", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(self.src), **(env or {})},
            check=False,
        )
        took = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"shardrun {' '.join(args)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
        return took, done.stdout

    def run(self, cache: Path) -> dict[str, float]:
        """One pipeline; `cache` holds what CI caches carry between runs (updated)."""
        work = Path(tempfile.mkdtemp(prefix="across-runs-"))
        times: dict[str, float] = {}
        build = self.checkout("build", work)
        for name in (*CACHED, "image.tar.zst"):
            if (cache / name).exists():
                (build / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(cache / name, build / name)
        url = self.fresh_engine()
        outputs = work / "github-output"
        outputs.touch()
        args = ["build", "--plain", "--builder", url, "--output", "image.tar.zst"]
        args += ["--partitions", str(PARTITIONS)]
        if self.reuse:
            args += ["--cache-from", "image.tar.zst"]
        times["build"], out = self.shardrun(build, *args, env={"GITHUB_OUTPUT": str(outputs)})
        times["deps_ran"] = float("RUN sleep" in out and "cached   [2/3]" not in out)
        wanted = range(1, PARTITIONS + 1)
        for line in outputs.read_text().splitlines():
            if line.startswith("partitions="):
                wanted = json.loads(line.split("=", 1)[1])
        times["partition_jobs"] = 0.0
        times["containers"] = 0.0
        downloads = work / "partitions"
        for k in wanted:
            job = self.checkout(f"p{k}", work)
            for name in ("image.tar.zst", "image.plan.json"):
                shutil.copy2(build / name, job / name)
            url = self.fresh_engine()
            took, _ = self.shardrun(
                job, "run", "--plain", "--image", "image.tar.zst", "--partition",
                f"{k}/{PARTITIONS}", "-w", url,
            )  # fmt: skip
            times["partition_jobs"] += took
            report = json.loads((job / ".shardrun/runs/latest/report.json").read_text())
            times["containers"] += sum(s["started"] is not None for s in report["shards"])
            shutil.copytree(job / ".shardrun/runs/latest", downloads / f"p{k}", symlinks=False)
        merge = self.checkout("merge", work)
        for name in CACHED:
            if (cache / name).exists():
                (merge / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(cache / name, merge / name)
        args = ["merge", "--plain"]
        if self.reuse:
            shutil.copy2(build / "image.plan.json", merge / "image.plan.json")
            args += ["--plan", "image.plan.json"]
        times["merge"], _ = self.shardrun(merge, *args, str(downloads))
        times["runner"] = times["build"] + times["partition_jobs"] + times["merge"]
        # What the caches carry to the next run: the merge's state, the build's image.
        for name in CACHED:
            if (merge / name).exists():
                (cache / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(merge / name, cache / name)
        shutil.copy2(build / "image.tar.zst", cache / "image.tar.zst")
        shutil.rmtree(work, ignore_errors=True)
        return times

    def warm_rebuild(self, previous: Path) -> float:
        """A warm engine's rebuild after the source change, plus loading the previous
        image file into a fresh engine: what a warm build on a fresh engine is held to."""
        url = self.fresh_engine()
        project = Path(tempfile.mkdtemp(prefix="across-warm-"))
        shutil.copytree(self.sources, project / "p")
        self.shardrun(project / "p", "build", "--plain", "--builder", url)
        (project / "p" / "src.txt").write_text(f"changed {time.time()}\n")
        rebuild, _ = self.shardrun(project / "p", "build", "--plain", "--builder", url)
        fresh = self.fresh_engine()
        started = time.perf_counter()
        # dockerd 20.10 loads gzip, not zstd: decompressed on the way in.
        subprocess.run(
            f"zstd -dc {previous} | docker -H {fresh} load -q",
            shell=True,
            check=True,
            capture_output=True,
        )
        load = time.perf_counter() - started
        shutil.rmtree(project, ignore_errors=True)
        return rebuild + load


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f}s ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, required=True, help="today's shardrun (a git archive)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deps", type=int, default=30, help="seconds of the dependency step")
    args = parser.parse_args()

    base = busybox()
    base_file = Path(tempfile.mkdtemp(prefix="across-base-")) / "base.tar"
    subprocess.run(["docker", "save", "-o", str(base_file), base], check=True)
    sources = Path(tempfile.mkdtemp(prefix="across-src-")) / "project"
    sources.mkdir()
    (sources / "Dockerfile.test").write_text(DOCKERFILE.format(deps=args.deps))
    (sources / "shards.toml").write_text(SHARDS.format(base=base))
    (sources / "src.txt").write_text("one\n")

    today = Matrix(args.src.resolve(), sources, base_file, reuse=False)
    new = Matrix(ROOT, sources, base_file, reuse=True)
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in ("today", "cold", "change", "same")}
    warm: list[float] = []
    for i in range(args.rounds):
        (sources / "src.txt").write_text(f"round {i}\n")
        rows["today"].append(today.run(Path(tempfile.mkdtemp())))
        cache = Path(tempfile.mkdtemp(prefix="across-cache-"))
        rows["cold"].append(new.run(cache))
        previous = Path(tempfile.mkdtemp()) / "previous.tar.zst"
        shutil.copy2(cache / "image.tar.zst", previous)
        (sources / "src.txt").write_text(f"round {i}, changed\n")
        rows["change"].append(new.run(cache))
        rows["same"].append(new.run(cache))
        warm.append(new.warm_rebuild(previous))
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    full = [r["runner"] for r in rows["today"]]
    print(f"across runs: {args.rounds} interleaved rounds, dependency step {args.deps}s, "
          f"{PARTITIONS} partitions, 8 shards; every job on a fresh engine")  # fmt: skip
    print(f"{'':34} {'build job':>24} {'runner time (all jobs)':>26}  ratio  containers")
    for name, label in (
        ("today", "today (cold build, every shard)"),
        ("cold", "cold (first run)"),
        ("change", "source change"),
        ("same", "no change"),
    ):
        builds = [r["build"] for r in rows[name]]
        runner = [r["runner"] for r in rows[name]]
        ratio = statistics.median(runner) / statistics.median(full)
        containers = statistics.median(r["containers"] for r in rows[name])
        ran = sum(r["deps_ran"] for r in rows[name])
        print(
            f"{label:34} {fmt(builds):>24} {fmt(runner):>26}  {ratio:5.2f}  {containers:4.0f}"
            f"   (dependency step ran in {ran}/{len(rows[name])})"
        )
    change_builds = [r["build"] for r in rows["change"]]
    print(
        f"source change, build job / (warm engine's rebuild + loading the previous image file "
        f"{fmt(warm)}): {statistics.median(change_builds) / statistics.median(warm):.2f}"
    )


if __name__ == "__main__":
    main()
