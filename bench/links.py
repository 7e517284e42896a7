"""Benchmark: getting the image to workers over real links (issue 17).

Links: `tc qdisc replace dev shardrun-wN root tbf rate R burst 256kb latency 100ms` on the
host side of a worker's veth pair (scripts/worker-hosts), so what the runner sends to that
worker's tcp:// (or ssh://) address crosses a link of rate R; removed at the end.

The image: the Debian + Python base (scripts/make-python-base) plus a layer that copies
/usr/lib, /usr/share and /usr/bin: ordinary files, about 455 MB as a `docker save`
archive. Built once on the local engine; shardrun's tarball of it is cached by the first,
untimed run, as every run after a build finds it. Before every sample the worker is rid of
every image that shares the image's bottom layer, so each sample is a full load into a
worker that has none of it. The shardrun samples are `shardrun run --plain --worker W`
with one `true` shard; their load time is the distribution phase of report.json. Each
project keeps its .shardrun/workers.json, so `auto` decides from the transfers before
(two untimed warm-up runs measure each link in both modes first).

a. 100 Mbit/s, one worker, full load, each of w1 (dockerd 20.10, graph driver: gzip) and
   w3 (dockerd 26.1, containerd store: zstd):
     docker save | pigz -1 | docker load   the baseline, wall seconds
     shardrun (auto)                       distribution seconds
   Printed: shardrun / baseline (target <= 0.80), and shardrun / the link limit for the
   bytes shardrun sent (wire bytes / 12.5 MB/s; target <= 1.15).
b. 1 Gbit/s (w1 over tcp) and a unix socket (w1's): shardrun auto against shardrun with
   `compress = "none"` (today's raw transfer), distribution seconds. Target <= 1.02.
c. 4 workers at 100 Mbit/s each (w1, w3, w4 over tcp, w2 over ssh), against one (w1):
   the runner's CPU seconds (user + system of the shardrun process, getrusage) spent on
   compression, as CPU(auto) - CPU(compress = "none") of the same workers; and the
   distribution's wall time, first load's start to last load's end. Targets: CPU <= 1.3x,
   wall <= 1.2x of one worker's.
d. A top-layer change over 100 Mbit/s to w1: `shardrun run` end to end (build included)
   after top.txt changed, auto against compress = "none". Target <= 1.0.

Medians of --runs interleaved samples (common.interleaved), with every sample printed.
Usage: python bench/links.py [--runs N] [--only a,b,c,d]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import (
    LOCAL,
    ORDINARY_IMAGE_DOCKERFILE,
    interleaved,
    load_note,
    mb,
    project,
    python_base,
    remove_images,
    worker_hosts,
)

PROJECT = "shardrun-bench-links"
TAG = "shardrun-bench-links:latest"
DOCKERFILE = ORDINARY_IMAGE_DOCKERFILE + "COPY top.txt /top.txt\n"
SHARDRUN = [sys.executable, "-m", "shardrun"]
LINK_100M = 12.5e6  # bytes a second


def toml(workers: list[str], compress: str) -> str:
    """One `true` shard for one worker. For several, a one-slot shard each that outlasts
    every load: a load no shard needs any more is abandoned, and all must be measured."""
    if len(workers) > 1:
        shard = f'name = "nap-{{index}}"\ncount = {len(workers)}\ncommand = ["sleep", "30"]\n'
        slots = "slots = 1\n"
    else:
        shard, slots = 'name = "start"\ncommand = ["true"]\n', ""
    tables = "".join(f'[[worker]]\nhost = "{w}"\ncompress = "{compress}"\n{slots}' for w in workers)
    return (
        f'project = "{PROJECT}"\n[image]\ntag = "{TAG}"\n'
        f'[[shard]]\n{shard}network = "none"\n' + tables
    )


def shape(devices: list[str], rate: str | None) -> None:
    for dev in devices:
        if rate is None:
            subprocess.run(
                ["tc", "qdisc", "del", "dev", dev, "root"], capture_output=True, check=False
            )
        else:
            subprocess.run(
                [
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    dev,
                    "root",
                    "tbf",
                    "rate",
                    rate,
                    "burst",
                    "256kb",
                    "latency",
                    "100ms",
                ],
                check=True,
            )


def link_cache(source: str, target: str) -> None:
    """Copies a project file, but links the cached tarballs: hundreds of MB each, never
    written in place. A linked shards.toml or top.txt would change in every copy at once."""
    if f"{os.sep}cache{os.sep}" in source:
        os.link(source, target)
    else:
        shutil.copy2(source, target)


class Bench:
    def __init__(self, hosts: dict[str, str]) -> None:
        self.hosts = hosts
        self.root = project(toml([], "auto"), DOCKERFILE)
        (self.root / "top.txt").write_text("v1\n")
        self.projects: dict[tuple, Path] = {}
        self.wire: dict[str, list[int]] = {}
        self.part = ""

    def url(self, name: str, kind: str = "TCP") -> str:
        return self.hosts[f"SHARDRUN_TEST_{name.upper()}_{kind}"]

    def first_layer(self) -> str:
        out = subprocess.run(
            ["docker", "image", "inspect", TAG, "--format", "{{index .RootFS.Layers 0}}"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def purge(self, unix_url: str) -> None:
        """Every image on the worker sharing the image's bottom layer, and the project's."""
        remove_images(PROJECT, [unix_url])
        bottom = self.first_layer()
        ids = subprocess.run(
            ["docker", "-H", unix_url, "image", "ls", "-aq", "--no-trunc"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        doomed = []
        for image_id in set(ids):
            layers = subprocess.run(
                [
                    "docker",
                    "-H",
                    unix_url,
                    "image",
                    "inspect",
                    image_id,
                    "--format",
                    "{{json .RootFS.Layers}}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if layers.returncode == 0 and bottom in json.loads(layers.stdout or "[]"):
                doomed.append(image_id)
        if doomed:
            subprocess.run(
                ["docker", "-H", unix_url, "rmi", "-f", *doomed], capture_output=True, check=False
            )

    def project_for(self, workers: list[str], compress: str) -> Path:
        """A copy of the project per (part, workers, codec): each keeps its own workers.json,
        so what one part's link rate taught `auto` does not decide another part's."""
        key = (self.part, tuple(workers), compress)
        if key not in self.projects:
            copy = self.root.with_name(f"{self.root.name}-{len(self.projects)}")
            shutil.copytree(self.root, copy, symlinks=True, copy_function=link_cache)
            (copy / "shards.toml").write_text(toml(workers, compress))
            self.projects[key] = copy
        return self.projects[key]

    def shardrun(self, workers: list[str], compress: str, purge: list[str]) -> dict:
        """One run into workers holding none of the image: report.json, CPU seconds, wall."""
        for url in purge:
            self.purge(url)
        root = self.project_for(workers, compress)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [*SHARDRUN, "run", "--plain"], cwd=root, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"shardrun run exited {done.returncode}:\n{done.stdout}{done.stderr}")
        report = json.loads((root / ".shardrun/runs/latest/report.json").read_text())
        loads = [(p["worker"], p["mode"]) for p in report["phases"]["distribution"]]
        if purge and (len(loads) != len(workers) or any(mode == "none" for _, mode in loads)):
            sys.exit(f"bench: a worker purged before the run was sent nothing: {loads}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return {"report": report, "cpu": cpu, "wall": wall}

    def distribution(self, result: dict, key: str | None = None) -> float:
        phases = [p for p in result["report"]["phases"]["distribution"] if p["mode"] != "none"]
        if key:
            self.wire.setdefault(key, []).append(sum(p["wire"] for p in phases))
            codecs = sorted({f"{p['mode']} {p['codec']}" for p in phases})
            self.wire.setdefault(key + " codecs", []).append(codecs)  # type: ignore[arg-type]
        start = min(p["started"] for p in phases)
        return max(p["started"] + p["seconds"] for p in phases) - start

    def pipe(self, tcp_url: str, unix_url: str, compress: str) -> float:
        self.purge(unix_url)
        middle = "| pigz -1 " if compress == "pigz" else ""
        started = time.perf_counter()
        subprocess.run(
            f"docker save {TAG} {middle}| docker -H {tcp_url} load -q",
            shell=True,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def show(samples: dict[str, list[float]], baseline: str, unit: str = "s") -> None:
    base = median(samples[baseline])
    for name, values in samples.items():
        runs = " ".join(f"{v:.2f}" for v in values)
        print(
            f"  {name:<34} median {median(values):7.2f}{unit}  ratio "
            f"{median(values) / base:5.2f}  (runs: {runs})"
        )


def part_a(bench: Bench, runs: int) -> None:
    for name in ("w1", "w3"):
        tcp, unix = bench.url(name), bench.url(name, "UNIX")
        print(f"\na. 100 Mbit/s, one worker, full load: {name} ({tcp})")
        shape([f"shardrun-{name}"], "100mbit")
        for _ in range(2):  # warm-up: the tarball cached, the link measured
            bench.shardrun([tcp], "auto", [unix])
        samples = interleaved(
            runs,
            pigz=lambda tcp=tcp, unix=unix: bench.pipe(tcp, unix, "pigz"),
            shardrun=lambda tcp=tcp, unix=unix, name=name: bench.distribution(
                bench.shardrun([tcp], "auto", [unix]), name
            ),
        )
        show(samples, "pigz")
        wire = median(bench.wire[name])
        limit = wire / LINK_100M
        print(
            f"  shardrun sent {mb(wire)} ({bench.wire[name + ' codecs'][-1]}); link limit "
            f"{limit:.2f}s; shardrun / limit {median(samples['shardrun']) / limit:.2f}"
        )
        shape([f"shardrun-{name}"], None)


def part_b(bench: Bench, runs: int) -> None:
    w1, unix = bench.url("w1"), bench.url("w1", "UNIX")
    for label, url, rate in (("1 Gbit/s", w1, "1gbit"), ("unix socket", unix, None)):
        print(f"\nb. {label}, one worker (w1), full load: auto against compress = none")
        shape(["shardrun-w1"], rate)
        for compress in ("auto", "none"):
            for _ in range(2):
                bench.shardrun([url], compress, [unix])
        samples = interleaved(
            runs,
            none=lambda url=url: bench.distribution(bench.shardrun([url], "none", [unix])),
            auto=lambda url=url, label=label: bench.distribution(
                bench.shardrun([url], "auto", [unix]), f"b {label}"
            ),
        )
        show(samples, "none")
        print(f"  auto sent {bench.wire[f'b {label}' + ' codecs'][-1]}")
    shape(["shardrun-w1"], None)


def part_c(bench: Bench, runs: int) -> None:
    names = ["w1", "w2", "w3", "w4"]
    four = [bench.url(n, "SSH" if n == "w2" else "TCP") for n in names]
    unix = [bench.url(n, "UNIX") for n in names]
    print("\nc. 4 workers at 100 Mbit/s each (w1, w3, w4 tcp; w2 ssh) against one (w1)")
    shape([f"shardrun-{n}" for n in names], "100mbit")
    for workers, purge in (([four[0]], unix[:1]), (four, unix)):
        bench.shardrun(workers, "auto", purge)  # warm-up: the links measured
    cpu: dict[str, list[float]] = {}

    def sample(label: str, workers: list[str], purge: list[str]):
        def one() -> float:
            result = bench.shardrun(workers, "auto", purge)
            report = result["report"]
            # The compressing process's own CPU time, every codec thread counted
            # (report.json's phases.compression): sending is not compression.
            compressed = report["phases"]["compression"]
            cpu.setdefault(f"{label} compression CPU", []).append(sum(c["cpu"] for c in compressed))
            cpu.setdefault(f"{label} runner CPU, all", []).append(result["cpu"])
            for c in compressed:
                print(
                    f"    {label}: compressed {c['archive']:<40} {mb(c['raw'])} -> "
                    f"{mb(c['compressed'])} {c['codec']} in {c['seconds']:.2f}s, CPU {c['cpu']:.2f}s"
                )
            for p in report["phases"]["distribution"]:
                print(
                    f"    {label}: {p['worker']:<22} {p['mode']:<4} {p['codec']:<4} archive "
                    f"{mb(p['sent'])} wire {mb(p['wire'])} in {p['seconds']:.2f}s"
                )
            return bench.distribution(result, f"c {label}")

        return one

    # The same loads without shardrun: a .tar.gz made once, loaded by the docker CLI into
    # one worker, and into all four at once. The four worker daemons unpack on this same
    # 2-core machine (and w2's bytes go through sshd here): that costs the four what four
    # separate machines would not, and this ratio shows how much.
    packed = bench.root.parent / "bench-links-image.tar.gz"
    subprocess.run(f"docker save {TAG} | pigz -1 > {packed}", shell=True, check=True)

    def cli_loads(workers: list[str], purge: list[str]) -> float:
        for url in purge:
            bench.purge(url)
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                ["docker", "-H", url, "load", "-q", "-i", str(packed)], stdout=subprocess.DEVNULL
            )
            for url in workers
        ]
        if any(proc.wait() != 0 for proc in procs):
            sys.exit("docker load of the .tar.gz failed")
        return time.perf_counter() - started

    walls = interleaved(
        runs,
        one=sample("one", four[:1], unix[:1]),
        four=sample("four", four, unix),
        cli_one=lambda: cli_loads(four[:1], unix[:1]),
        cli_four=lambda: cli_loads(four, unix),
    )
    packed.unlink()
    show({k: walls[k] for k in ("one", "four")}, "one")
    show({k: walls[k] for k in ("cli_one", "cli_four")}, "cli_one")
    machine = median(walls["cli_four"]) / median(walls["cli_one"])
    ours = median(walls["four"]) / median(walls["one"])
    print(f"  four/one: shardrun {ours:.2f}, docker load of a ready .tar.gz {machine:.2f}")
    for label in ("one", "four"):
        print(
            f"  {label}: sent {bench.wire[f'c {label}' + ' codecs'][-1]}, "
            f"{mb(median(bench.wire[f'c {label}']))} on the wires in all"
        )
    show({k: v for k, v in cpu.items() if "compression" in k}, "one compression CPU")
    show({k: v for k, v in cpu.items() if "all" in k}, "one runner CPU, all")
    shape([f"shardrun-{n}" for n in names], None)


def part_d(bench: Bench, runs: int) -> None:
    w1, unix = bench.url("w1"), bench.url("w1", "UNIX")
    print("\nd. a top-layer change over 100 Mbit/s to w1, end to end: auto against none")
    shape(["shardrun-w1"], "100mbit")
    count = [0]

    def changed(compress: str) -> float:
        root = bench.project_for([w1], compress)
        count[0] += 1
        (root / "top.txt").write_text(f"change {count[0]}\n")
        return bench.shardrun([w1], compress, [])["wall"]

    for compress in ("auto", "none"):
        bench.shardrun([w1], compress, [unix])  # w1 holds the image: later loads are thin
    samples = interleaved(runs, none=lambda: changed("none"), auto=lambda: changed("auto"))
    show(samples, "none")
    shape(["shardrun-w1"], None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="a,b,c,d")
    args = parser.parse_args()
    if shutil.which("pigz") is None:
        sys.exit("bench/links.py needs pigz for its baseline: apt-get install pigz")
    hosts = worker_hosts()
    python_base()
    bench = Bench(hosts)
    print(load_note())
    built = subprocess.run(
        [*SHARDRUN, "build", "--plain"], cwd=bench.root, capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        sys.exit(built.stdout + built.stderr)
    size = subprocess.run(
        ["docker", "image", "inspect", TAG, "--format", "{{.Size}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"image {TAG}: {mb(int(size))} on the engine")
    parts = {"a": part_a, "b": part_b, "c": part_c, "d": part_d}
    try:
        for key in args.only.split(","):
            bench.part = key
            parts[key](bench, args.runs)
    finally:
        shape([f"shardrun-w{i}" for i in range(1, 5)], None)
        remove_images(PROJECT, [LOCAL] + [bench.url(f"w{i}", "UNIX") for i in range(1, 5)])
        for path in [bench.root, *bench.projects.values()]:
            shutil.rmtree(path, ignore_errors=True)
    print(load_note())


if __name__ == "__main__":
    main()
