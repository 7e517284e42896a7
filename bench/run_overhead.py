"""Benchmark: shardrun against `xargs -P 4 docker run --rm`, 16 shards of `sleep 1`.

Both run the same image on the local engine, four at a time. Prints the median of
3 interleaved runs of each and the ratio shardrun / baseline (target: <= 1.10).
Usage: python bench/run_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from common import busybox, interleaved, project, report, timed

SHARDS, JOBS = 16, 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = busybox()
    root = project(
        f'[image]\nbuild-args = {{ BASE_IMAGE = "{base}" }}\ntag = "shardrun-bench:overhead"\n'
        f'[[shard]]\nname = "s-{{index}}"\ncount = {SHARDS}\ncommand = "sleep 1"\n'
        'network = "none"\n'
    )
    shardrun = [sys.executable, "-m", "shardrun", "run", "--plain", "--jobs", str(JOBS)]
    timed(shardrun, cwd=root)  # warm-up: the first run builds and saves the image
    xargs = (
        f"seq {SHARDS} | xargs -P {JOBS} -I{{}} "
        "docker run --rm --network none shardrun-bench:overhead sleep 1"
    )
    samples = interleaved(
        args.runs,
        baseline=lambda: timed(["sh", "-c", xargs]),
        shardrun=lambda: timed(shardrun, cwd=root),
    )
    print(f"{SHARDS} shards of `sleep 1`, {JOBS} at a time, {args.runs} interleaved runs:")
    report(samples, "baseline")
    subprocess.run(["rm", "-rf", str(root)], check=True)


if __name__ == "__main__":
    main()
