"""Benchmark: where a container's lifecycle spends its time on the local engine, through
shardrun's own engine layer: create, attach, start, wait (for `true`), remove.

Prints the median and spread of each phase, with network "none" and the default bridge,
one container at a time and with 4 at once (as 4 slots run them).
Usage: python bench/lifecycle.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import docker
from common import busybox

from shardrun.engine.api import ContainerRequest
from shardrun.engine.docker_engine import DockerEngine
from shardrun.model.shard import Shard

PHASES = ("create", "attach", "start", "wait", "remove")


def lifecycle(engine: DockerEngine, image: str, network: str) -> dict[str, float]:
    request = ContainerRequest(
        image,
        Shard(name="bench", command=("true",), network=network),
        {"shardrun.project": "bench-lifecycle"},
    )
    marks = [time.perf_counter()]
    container = engine.create(request)
    marks.append(time.perf_counter())
    stream = engine.attach(container)
    marks.append(time.perf_counter())
    engine.start(container)
    marks.append(time.perf_counter())
    engine.wait(container)
    marks.append(time.perf_counter())
    stream.close()
    engine.remove(container)
    marks.append(time.perf_counter())
    return {phase: b - a for phase, a, b in zip(PHASES, marks, marks[1:], strict=False)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    client = docker.from_env()
    image = busybox(client)
    engine = DockerEngine(client)
    for network in ("none", "bridge"):
        for parallel in (1, 4):
            lifecycle(engine, image, network)  # warm-up
            with ThreadPoolExecutor(parallel) as pool:
                rows = list(
                    pool.map(
                        lifecycle,
                        [engine] * (args.runs * parallel),
                        [image] * (args.runs * parallel),
                        [network] * (args.runs * parallel),
                    )
                )
            cells = []
            for phase in PHASES:
                values = [row[phase] * 1000 for row in rows]
                cells.append(
                    f"{phase} {statistics.median(values):4.0f} ms "
                    f"({min(values):.0f}-{max(values):.0f})"
                )
            total = statistics.median(sum(row.values()) * 1000 for row in rows)
            print(
                f"network {network:<6} {parallel} at once: "
                + ", ".join(cells)
                + f"; total {total:.0f} ms"
            )


if __name__ == "__main__":
    main()
