"""Benchmark: a shard that prints 200 MB as fast as it can, through shardrun and through
`docker run` attached to the same command, side by side on the local engine.

Prints the medians (and the spread) of interleaved runs, the ratio shardrun / docker run
(target: <= 1.2) and shardrun's peak RSS (target: < 100 MB).
Usage: python bench/log_stream.py [--runs N] [--mb 150]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

from common import busybox, cleanup, interleaved, project


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=150, help="random MB, printed as base64")
    args = parser.parse_args()
    base = busybox()
    command = f"head -c {args.mb}000000 /dev/urandom | base64"
    root = project(
        f'project = "bench-logs"\n'
        f'[image]\nbuild-args = {{ BASE_IMAGE = "{base}" }}\ntag = "shardrun-bench:logs"\n'
        f'[[shard]]\nname = "loud"\nnetwork = "none"\ncommand = ["sh", "-c", "{command}"]\n'
    )
    shardrun = [sys.executable, "-m", "shardrun", "run", "--plain"]
    subprocess.run(shardrun, cwd=root, check=True, stdout=subprocess.DEVNULL)  # builds
    peaks: list[float] = []

    def through_shardrun() -> float:
        start = time.perf_counter()
        subprocess.run(shardrun, cwd=root, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        # ru_maxrss of children is the largest so far: every run is alike, so it is the peak.
        peaks.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        return seconds

    def through_docker_run() -> float:
        start = time.perf_counter()
        subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "shardrun-bench:logs",
                "sh",
                "-c",
                command,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - start

    samples = interleaved(args.runs, docker_run=through_docker_run, shardrun=through_shardrun)
    base_median = statistics.median(samples["docker_run"])
    print(f"a shard printing {args.mb * 4 // 3} MB of base64, {args.runs} interleaved runs:")
    for name, values in samples.items():
        med = statistics.median(values)
        print(
            f"  {name:<11} median {med:6.2f}s  spread {min(values):.2f}-{max(values):.2f}s"
            f"  ratio {med / base_median:5.2f}"
        )
    print(f"  shardrun peak RSS {max(peaks):.0f} MB (target < 100 MB)")
    cleanup("bench-logs", root, ["unix:///var/run/docker.sock"])


if __name__ == "__main__":
    main()
