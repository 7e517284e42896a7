"""Benchmark: getting the image onto 8 worker daemons, against 2.

The issue's target: with 8 workers, an unchanged image costs <= 0.5 s in all; after a
top-layer change every worker gets only that layer, concurrently; the runner's peak RSS
with 8 workers stays under 1.5 times its RSS with 2.

Workers: 8 dockerds started here, s1..s8, each in a network namespace of its own (as
scripts/worker-hosts makes the tests' hosts), reached over tcp:// through a veth pair:
sK at 198.18.1.(4K-2). The default engine builds and is no worker, so every worker needs
the image. The image is busybox + a --size MB layer of random bytes + `COPY top.txt`.
The shards: one `sleep 2` per worker, one slot each, so every worker is needed. Every
scenario runs with s1,s2 and with s1..s8:

a. first load (one run each, to seed): the workers hold nothing and get the full tarball.
b. unchanged image: the distribution time is the largest `load_seconds` of report.json
   (target <= 0.5 s, 0 bytes sent).
c. top layer changed (a new top.txt before every sample): each worker's load mode (target:
   thin), bytes sent and load_seconds, and whether the loads overlapped. report.json has
   no per-worker start or finish times, so the daemons' own records are used: the
   `Calling POST .../images/load` line of each one's debug log (the load starts) and its
   image `load` event (the image is there).
d. the runner's peak RSS in c's runs (ru_maxrss of a wrapper whose only waited-for child
   it is): 8 workers / 2 workers, target < 1.5.

Samples of 2 and 8 workers alternate; medians and spread (min-max) over --runs. At the
end, also on Ctrl-C, SIGTERM or an error, the daemons, their namespaces, veths and state
(/tmp/shardrun-scale) are removed, and the bench's images on the default engine and the
temp project too.
Usage: python bench/scale.py [--runs N] [--size MB]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import docker
from common import (
    BIG_IMAGE_DOCKERFILE,
    LOCAL,
    busybox,
    captured,
    cleanup,
    interleaved,
    latest_report,
    load_note,
    mb,
    project,
    remove_images,
)

PROJECT = "shardrun-bench-scale"
TAG = f"{PROJECT}:latest"
STATE = Path("/tmp/shardrun-scale")
WORKERS = [f"s{k}" for k in range(1, 9)]
READY_TIMEOUT = 60  # seconds for a new daemon to answer
# A run that lost a worker, or that abandoned a load because the other workers had run
# every shard, says nothing about distribution to N workers: it is taken again (in c on a
# new change) and reported.
ATTEMPTS = 4
# Peak RSS of the runner alone: the wrapper's only waited-for child is the runner (its
# watchdog is a process of its own session that it never waits for). On Ctrl-C or SIGTERM
# the bench kills the wrapper; the runner then gets SIGINT (prctl PR_SET_PDEATHSIG) and
# ends its run as on a Ctrl-C, instead of going on against workers that are going away.
MEASURE = (
    "import ctypes, resource, subprocess, sys; "
    "code = subprocess.call(sys.argv[2:], preexec_fn=lambda: ctypes.CDLL(None).prctl(1, 2)); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
    "sys.exit(code)"
)
LOAD_CALL = "Calling POST /v1.41/images/load"


def ip_of(name: str, end: int) -> str:
    """The /30 of worker sK: host end 1, namespace end 2 (worker-hosts uses 198.18.0.x)."""
    return f"198.18.1.{4 * (int(name[1:]) - 1) + end}"


def url_of(name: str) -> str:
    return f"tcp://{ip_of(name, 2)}:2375"


def netns_of(name: str) -> str:
    return f"shardrun-{name}"  # the host end of its veth too (names <= 15 characters)


# --- the worker daemons ---------------------------------------------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def start_workers(procs: list[subprocess.Popen]) -> None:
    """Start every daemon, then wait for them all: they start concurrently. Each started
    one goes into `procs` at once, for the teardown however far this gets."""
    for name in WORKERS:
        ns, state = netns_of(name), STATE / name
        state.mkdir(parents=True)
        ip("netns", "add", ns)
        ip("link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("addr", "add", f"{ip_of(name, 1)}/30", "dev", ns)
        ip("link", "set", ns, "up")
        ip("-n", ns, "addr", "add", f"{ip_of(name, 2)}/30", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
        # Its own key file: the default /etc/docker/key.json gives every daemon one ID.
        (state / "daemon.json").write_text(
            json.dumps({"deprecated-key-path": str(state / "key.json")})
        )
        with open(state / "dockerd.log", "w") as log:
            # nsenter, not `ip netns exec` (it remounts /sys and dockerd fails); --tls=false:
            # listen on tcp at once, not after 15 s; --debug logs each API call, the start of
            # a load in (c); its own cgroup parent and containerd namespaces keep it apart.
            procs.append(
                subprocess.Popen(
                    [
                        "nsenter",
                        f"--net=/run/netns/{ns}",
                        "dockerd",
                        "--debug",
                        "--host",
                        url_of(name),
                        "--tls=false",
                        "--data-root",
                        f"{state}/data",
                        "--exec-root",
                        f"{state}/exec",
                        "--pidfile",
                        f"{state}/dockerd.pid",
                        "--config-file",
                        f"{state}/daemon.json",
                        "--containerd-namespace",
                        ns,
                        "--containerd-plugins-namespace",
                        f"{ns}-plugins",
                        "--exec-opt",
                        "native.cgroupdriver=cgroupfs",
                        "--cgroup-parent",
                        f"/{ns}",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C reaches the bench, which stops it in order
                )
            )
    deadline = time.monotonic() + READY_TIMEOUT
    for name, proc in zip(WORKERS, procs, strict=True):
        while True:
            try:
                docker.DockerClient(base_url=url_of(name), timeout=5).close()  # asks /version
                break
            except Exception:  # noqa: BLE001 - not listening yet, in any of many ways
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (STATE / name / "dockerd.log").read_text().splitlines()[-20:]
                    sys.exit(
                        f"{name}: dockerd did not answer on {url_of(name)}:\n" + "\n".join(tail)
                    )
                time.sleep(0.2)


def stop_workers(procs: list[subprocess.Popen]) -> None:
    """Remove every trace of the workers; also what a killed earlier bench left."""
    for proc in procs:
        proc.terminate()  # dockerd stops its containers and its containerd
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for name in WORKERS:
        ns = netns_of(name)
        if os.path.exists(f"/run/netns/{ns}"):
            # Anything still in the namespace we made is ours: a containerd, shims.
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False
            ).stdout.split()
            _kill(pids)
        # Containers live in namespaces of their own, but in the worker's cgroup.
        cgroups = glob.glob(f"/sys/fs/cgroup/*/{ns}")
        _kill(
            [
                pid
                for cg in cgroups
                for procs_file in glob.glob(f"{cg}/**/cgroup.procs", recursive=True)
                for pid in Path(procs_file).read_text().split()
            ]
        )
        for cg in cgroups:
            for sub in sorted(glob.glob(f"{cg}/**/", recursive=True), key=len, reverse=True):
                subprocess.run(["rmdir", sub], stderr=subprocess.DEVNULL, check=False)
        subprocess.run(["ip", "link", "delete", ns], stderr=subprocess.DEVNULL, check=False)
        subprocess.run(["ip", "netns", "delete", ns], stderr=subprocess.DEVNULL, check=False)
    # A killed daemon leaves mounts (netns files, overlays): deepest first.
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{STATE}/")), reverse=True):
        if subprocess.run(["umount", mount], stderr=subprocess.DEVNULL, check=False).returncode:
            subprocess.run(["umount", "-l", mount], check=False)
    # --one-file-system: never delete through a mount that is still there.
    subprocess.run(["rm", "-rf", "--one-file-system", str(STATE)], check=False)


def _kill(pids: list[str]) -> None:
    if pids:
        subprocess.run(["kill", "-KILL", *pids], stderr=subprocess.DEVNULL, check=False)
        time.sleep(0.5)


def load_spans(name: str, since: float, until: float) -> list[tuple[float, float]]:
    """The image loads daemon `name` did between two times, by its own clock: the API call
    arriving (debug log) and the image being there (its `load` event), in epoch seconds."""
    starts = []
    for line in (STATE / name / "dockerd.log").read_text(errors="replace").splitlines():
        if LOAD_CALL in line and line.startswith('time="'):
            at = datetime.fromisoformat(line[6 : line.index('"', 6)]).timestamp()
            if since <= at <= until:
                starts.append(at)
    ends = subprocess.run(
        [
            "docker",
            "-H",
            url_of(name),
            "events",
            "--since",
            f"{since:.6f}",
            "--until",
            f"{until:.6f}",
            "--filter",
            "type=image",
            "--filter",
            "event=load",
            "--format",
            "{{.TimeNano}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return list(zip(starts, sorted(int(e) / 1e9 for e in ends), strict=False))


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = best = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


# --- the runs ---------------------------------------------------------------------------


@dataclass
class Sample:
    workers: dict[str, dict]  # worker name -> its report.json entry
    spans: dict[str, list[tuple[float, float]]]  # worker name -> its daemon's loads
    rss_mb: float

    @property
    def distribution(self) -> float:
        return max(w["load_seconds"] for w in self.workers.values())

    @property
    def sent(self) -> int:
        return sum(w["sent"] for w in self.workers.values())


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.samples: dict[tuple[str, int], list[Sample]] = {}
        self.lost: list[str] = []  # one line per worker of a run taken again, and why
        self.name_of = {url_of(name): name for name in WORKERS}

    def change_top(self) -> None:
        (self.root / "top.txt").write_text(f"{uuid.uuid4()}\n")

    def run(self, scenario: str, n: int) -> float:
        """One `shardrun run` on s1..sN; returns its distribution time."""
        argv = [sys.executable, "-m", "shardrun", "run", "--plain"]
        for k, name in enumerate(WORKERS[:n], 1):
            argv += ["--shard", f"nap-{k}", "--worker", f"{url_of(name)}*1"]
        for attempt in range(1, ATTEMPTS + 1):
            if scenario == "changed":
                self.change_top()
            with tempfile.NamedTemporaryFile("r") as rss:
                captured([sys.executable, "-c", MEASURE, rss.name, *argv], self.root)
                rss_mb = int(rss.read()) / 1024
            report = latest_report(self.root)
            bad = [w for w in report["workers"] if w["lost"] or not w["load"]]
            if not bad:
                break
            for w in bad:
                why = w["lost"] or "its load was abandoned, the other workers ran every shard"
                self.lost.append(f"{scenario}, {n} workers, attempt {attempt}: {w['name']}: {why}")
        else:
            sys.exit(
                f"a worker was lost or not needed in {ATTEMPTS} runs in a row:\n"
                + "\n".join(self.lost[-ATTEMPTS:])
            )
        workers = {self.name_of[w["url"]]: w for w in report["workers"]}
        spans = {name: load_spans(name, report["started"], report["finished"]) for name in workers}
        sample = Sample(workers, spans, rss_mb)
        self.samples.setdefault((scenario, n), []).append(sample)
        return sample.distribution


# --- output -------------------------------------------------------------------------------


def spread(values: list[float], unit: str = "s", fmt: str = ".2f") -> str:
    med = statistics.median(values)
    return f"median {med:{fmt}}{unit} ({min(values):{fmt}}-{max(values):{fmt}})"


def print_scenario(bench: Bench, scenario: str, n: int) -> None:
    samples = bench.samples[(scenario, n)]
    dist = [s.distribution for s in samples]
    total = [sum(w["load_seconds"] for w in s.workers.values()) for s in samples]
    sent = [s.sent for s in samples]
    print(
        f"  {n} workers: distribution {spread(dist)}; load_seconds of all workers add up "
        f"to {spread(total)}; sent {mb(statistics.median(sent))} in all"
    )
    for name in WORKERS[:n]:
        entries = [s.workers[name] for s in samples]
        modes = " ".join(e["load"] for e in entries)
        sent_each = " ".join(mb(e["sent"]) for e in entries)
        load_s = " ".join(f"{e['load_seconds']:.2f}" for e in entries)
        daemon = " ".join(
            "+".join(f"{b - a:.2f}" for a, b in s.spans[name]) or "-" for s in samples
        )
        print(
            f"    {name} {url_of(name):<23} {modes:<15} sent {sent_each:<24} "
            f"load_seconds {load_s}  daemon's load {daemon}"
        )
    for i, s in enumerate(samples, 1):
        spans = [span for name in s.workers for span in s.spans[name]]
        if spans:
            starts, ends = [a for a, _ in spans], [b for _, b in spans]
            print(
                f"    run {i}, daemons' clocks: {len(spans)} loads, at most "
                f"{most_at_once(spans)} at once; started within {max(starts) - min(starts):.2f}s,"
                f" first start to last finish {max(ends) - min(starts):.2f}s, "
                f"the loads add up to {sum(b - a for a, b in spans):.2f}s"
            )


def print_rss(bench: Bench) -> None:
    for scenario in ("unchanged", "changed"):
        rss = {n: [s.rss_mb for s in bench.samples[(scenario, n)]] for n in (2, 8)}
        ratio = statistics.median(rss[8]) / statistics.median(rss[2])
        print(
            f"  {scenario:<9}: 2 workers {spread(rss[2], ' MB', '.0f')}, "
            f"8 workers {spread(rss[8], ' MB', '.0f')}; 8 / 2 = {ratio:.2f}"
        )
    first = {n: bench.samples[("first", n)][0].rss_mb for n in (2, 8)}
    print(
        f"  first load: 2 workers {first[2]:.0f} MB, 8 workers {first[8]:.0f} MB; "
        f"8 / 2 = {first[8] / first[2]:.2f}"
    )


def verdicts(bench: Bench) -> None:
    med = statistics.median
    dist = med(s.distribution for s in bench.samples[("unchanged", 8)])
    sent = max(s.sent for s in bench.samples[("unchanged", 8)])
    ok = dist <= 0.5 and sent == 0
    print(
        f"b. unchanged, 8 workers: distribution {dist:.2f}s, {sent} bytes sent "
        f"(target <= 0.5 s, 0 bytes): {'met' if ok else 'MISSED'}"
    )

    changed = bench.samples[("changed", 8)]
    modes = [w["load"] for s in changed for w in s.workers.values()]
    all_thin = set(modes) == {"thin"}
    sent = max(w["sent"] for s in changed for w in s.workers.values())
    at_once = [most_at_once([sp for spans in s.spans.values() for sp in spans]) for s in changed]
    concurrent = all(k == 8 for k in at_once)
    print(
        f"c. top layer changed, 8 workers: loads {', '.join(sorted(set(modes)))}, at most "
        f"{mb(sent)} to a worker (target: thin only): {'met' if all_thin else 'MISSED'}; "
        f"{'/'.join(map(str, at_once))} loads at once in the runs (target: all 8): "
        f"{'met' if concurrent else 'MISSED'}"
    )

    rss2 = med(s.rss_mb for s in bench.samples[("changed", 2)])
    rss8 = med(s.rss_mb for s in changed)
    ratio = rss8 / rss2
    print(
        f"d. runner peak RSS, top layer changed: {rss8:.0f} MB with 8 workers / {rss2:.0f} "
        f"MB with 2 = {ratio:.2f} (target < 1.5): {'met' if ratio < 1.5 else 'MISSED'}"
    )
    if bench.lost:
        print(
            "\nruns taken again and left out of the figures (a lost worker is a shardrun problem):"
        )
        for line in bench.lost:
            print("   ", line[:300])


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # into the finally below, which stops the workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=100, help="MB of the big bottom layer")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench makes network namespaces and starts dockerds")

    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGHUP, _interrupted)
    base = busybox()
    root = project(
        f'project = "{PROJECT}"\n'
        f'[image]\nbuild-args = {{ BASE_IMAGE = "{base}" }}\ntag = "{TAG}"\n'
        f'[[shard]]\nname = "nap-{{index}}"\ncount = {len(WORKERS)}\ncommand = "sleep 2"\n'
        'network = "none"\n',
        dockerfile=BIG_IMAGE_DOCKERFILE.format(size=args.size),
    )
    bench = Bench(root)
    procs: list[subprocess.Popen] = []
    try:
        if STATE.exists() or any(os.path.exists(f"/run/netns/{netns_of(n)}") for n in WORKERS):
            print("removing what an earlier scale bench left")
            stop_workers([])
        print(f"{load_note()} at the start")
        started = time.perf_counter()
        start_workers(procs)
        print(
            f"workers s1..s8 ready in {time.perf_counter() - started:.1f}s: dockerd in netns "
            f"shardrun-sK at {url_of('s1')} .. {url_of('s8')}"
        )
        print(
            f"image: busybox + {args.size} MB random layer + top.txt; "
            f"{args.runs} interleaved runs per worker count\n"
        )

        bench.change_top()
        bench.run("first", 8)
        # s1 and s2 hold it now: without it again, the 2-worker seed is a first load too.
        remove_images(PROJECT, [url_of("s1"), url_of("s2")])
        bench.run("first", 2)
        for scenario in ("unchanged", "changed"):
            interleaved(
                args.runs,
                **{f"{n} workers": lambda s=scenario, n=n: bench.run(s, n) for n in (2, 8)},
            )
        print(f"{load_note()} at the end\n")

        print(
            "per worker: load mode, bytes sent, report.json's load_seconds and the load "
            "as its daemon saw it, for each run\n"
        )
        titles = {
            "first": "a. first load (one run each, to seed)",
            "unchanged": "b. unchanged image (target: <= 0.5 s, 0 bytes)",
            "changed": "c. top layer changed (target: thin loads, all at once)",
        }
        for scenario, title in titles.items():
            print(title)
            for n in (2, 8):
                print_scenario(bench, scenario, n)
        print("d. runner peak RSS")
        print_rss(bench)
        print()
        verdicts(bench)
    finally:
        # A second Ctrl-C must not leave the teardown half done.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_workers(procs)
        cleanup(PROJECT, root, [LOCAL])


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; the workers are stopped and removed", file=sys.stderr)
        sys.exit(130)
