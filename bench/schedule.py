"""Benchmark: shardrun's dynamic longest-first queue against a static round-robin split.

24 shards of `sleep D` with uneven durations (84 units in all, 1 unit = 1 s by default) on
6 slots: 3 workers x 2 (the default engine, w1 over tcp://, w2 over its unix socket or,
with `--w2 ssh`, ssh://; the round-robin uses the same URLs).

A first shardrun run records the durations in .shardrun/timings.json (it is also the
warm-up: build, save, load onto w1 and w2), so the measured runs start the longest first.
Each measured run's makespan (last finish - first start, from report.json) and wall time
are compared with
  (a) the lower bound max(longest, total / slots): target within 10 %;
  (b) the static split a CI matrix does: shard i on slot i mod 6, each slot running its
      list one after another with `docker -H W run --rm --network none IMG sleep D`, the
      six slots in parallel, timed for real; the ratio shardrun / round-robin.
Runs alternate (shardrun, round-robin, ...); medians. Images made here and the temp
project are removed at the end.
Usage: python bench/schedule.py [--runs N] [--unit SECONDS] [--w2 unix|ssh]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

from common import (
    LOCAL,
    busybox,
    captured,
    cleanup,
    interleaved,
    latest_report,
    load_note,
    project,
    worker_hosts,
)

from shardrun.run.schedule import lower_bound

PROJECT = "shardrun-bench-schedule"
# random.Random(1).choices(range(1, 9), weights=[4, 4, 3, 3, 2, 2, 1, 1], k=24): mostly
# short shards and a few long ones, like a real suite. 84 units; lower bound 14 on 6
# slots; a zero-overhead longest-first schedule reaches 14, round-robin in this order 18.
DURATIONS = [1, 6, 5, 2, 3, 3, 4, 5, 1, 1, 6, 3, 5, 1, 3, 5, 2, 7, 7, 1, 1, 3, 7, 2]
SLOTS_PER_WORKER = 2
# A run that lost a worker (e.g. another process restarting the shared test daemons) says
# nothing about scheduling: it is taken again, at most this many times in all.
ATTEMPTS = 3


def shard_name(i: int) -> str:
    return f"s-{i + 1:02d}"


def shards_toml(base: str, seconds: list[float]) -> str:
    lines = [
        f'project = "{PROJECT}"',
        f'[image]\nbuild-args = {{ BASE_IMAGE = "{base}" }}',
        '[defaults]\nnetwork = "none"',
    ]
    for i, d in enumerate(seconds):
        lines.append(f'[[shard]]\nname = "{shard_name(i)}"\ncommand = "sleep {d:g}"')
    return "\n".join(lines) + "\n"


def ideal_round_robin(seconds: list[float], slots: int) -> float:
    return max(sum(seconds[s::slots]) for s in range(slots))


def ideal_longest_first(seconds: list[float], slots: int) -> float:
    loads = [0.0] * slots
    for d in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


class Bench:
    def __init__(self, root: Path, urls: list[str], seconds: list[float]) -> None:
        self.root = root
        self.urls = urls
        self.seconds = seconds
        self.argv = [sys.executable, "-m", "shardrun", "run", "--plain"]
        for url in urls:
            # `default` is the same engine as urls[0], with a clearer name in reports.
            target = "default" if url == LOCAL else url
            self.argv += ["--worker", f"{target}*{SLOTS_PER_WORKER}"]
        self.makespans: list[float] = []
        self.reports: list[dict] = []
        self.image_id = ""
        self.retried: list[str] = []  # runs taken again (a worker lost, a shard not PASS)

    def shardrun(self) -> float:
        for attempt in range(1, ATTEMPTS + 1):
            wall, _ = captured(self.argv, self.root)
            report = latest_report(self.root)
            bad = [s for s in report["shards"] if s["status"] != "PASS"]
            lost = [w for w in report["workers"] if w["lost"]]
            if not bad and not lost:
                break
            self.retried.append(
                f"attempt {attempt}: not PASS: {[s['name'] for s in bad]}; lost: "
                + "; ".join(f"{w['name']}: {w['lost']}" for w in lost)
            )
        else:
            sys.exit(
                f"{ATTEMPTS} shardrun runs in a row were not clean:\n"
                + "\n".join(self.retried[-ATTEMPTS:])
            )
        shards = report["shards"]
        self.makespans.append(
            max(s["finished"] for s in shards) - min(s["started"] for s in shards)
        )
        self.reports.append(report)
        self.image_id = report["image_id"]
        return wall

    def round_robin(self) -> float:
        """Shard i on slot i mod 6; slot j is slot j mod 2 of worker j // 2."""
        slots = len(self.urls) * SLOTS_PER_WORKER
        scripts = []
        for slot in range(slots):
            url = self.urls[slot // SLOTS_PER_WORKER]
            scripts.append(
                " && ".join(
                    f"docker -H {url} run --rm --network none {self.image_id} sleep {d:g}"
                    for d in self.seconds[slot::slots]
                )
            )
        start = time.perf_counter()
        procs = [subprocess.Popen(["sh", "-c", s], stdout=subprocess.DEVNULL) for s in scripts]
        codes = [p.wait() for p in procs]
        seconds = time.perf_counter() - start
        if any(codes):
            sys.exit(f"a round-robin slot failed (exit codes {codes})")
        return seconds


def overheads(reports: list[dict], seconds: dict[str, float]) -> tuple[list[float], list[float]]:
    """Where a makespan goes beyond the sleeps: per shard, (finished - started - D), and per
    slot the gaps between one shard's finish and the next one's start."""
    run_extra, gaps = [], []
    for report in reports:
        slots: dict[tuple, list[dict]] = {}
        for s in report["shards"]:
            run_extra.append(s["finished"] - s["started"] - seconds[s["name"]])
            slots.setdefault((s["worker"], s["slot"]), []).append(s)
        for shards in slots.values():
            shards.sort(key=lambda s: s["started"])
            gaps += [b["started"] - a["finished"] for a, b in pairwise(shards)]
    return run_extra, gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--unit", type=float, default=1.0, help="seconds per duration unit")
    parser.add_argument(
        "--w2",
        choices=("unix", "ssh"),
        default="unix",
        help="how both shardrun and the round-robin reach worker w2",
    )
    args = parser.parse_args()

    env = worker_hosts()
    urls = [
        LOCAL,
        env["SHARDRUN_TEST_W1_TCP"],
        env["SHARDRUN_TEST_W2_UNIX" if args.w2 == "unix" else "SHARDRUN_TEST_W2_SSH"],
    ]
    seconds = [round(d * args.unit, 3) for d in DURATIONS]
    slots = len(urls) * SLOTS_PER_WORKER
    root = project(shards_toml(busybox(), seconds))
    bench = Bench(root, urls, seconds)
    try:
        print(f"{load_note()} at the start")
        print(
            f"{len(seconds)} shards of `sleep D`, {sum(seconds):g}s in all "
            f"(longest {max(seconds):g}s), on {slots} slots:"
        )
        for url in urls:
            print(f"  {url} *{SLOTS_PER_WORKER}")
        # The recording run: no timings yet, so shards start in file order.
        record_wall = bench.shardrun()
        record_span = bench.makespans.pop()
        bench.reports.clear()
        recorded = json.loads((root / ".shardrun" / "timings.json").read_text())["durations"]
        missing = {shard_name(i) for i in range(len(seconds))} - set(recorded)
        if missing:
            sys.exit(f"timings.json lacks {sorted(missing)} after the recording run")

        samples = interleaved(args.runs, shardrun=bench.shardrun, round_robin=bench.round_robin)
        print(f"{load_note()} at the end")
        print_results(bench, samples, slots, record_wall, record_span, args.runs)
    finally:
        cleanup(PROJECT, root, urls)


def print_results(
    bench: Bench, samples: dict, slots: int, record_wall: float, record_span: float, runs: int
) -> None:
    med = statistics.median
    seconds = bench.seconds
    bound = lower_bound(seconds, slots)
    span, wall, rr = med(bench.makespans), med(samples["shardrun"]), med(samples["round_robin"])

    def fmt(values: list[float]) -> str:
        return " ".join(f"{v:.2f}" for v in values)

    print(f"\n{runs} interleaved runs each; medians:")
    print(f"  {'lower bound max(longest, total/slots)':<46} {bound:6.2f}s")
    print(
        f"  {'ideal longest-first (no overhead)':<46} {ideal_longest_first(seconds, slots):6.2f}s"
    )
    print(f"  {'ideal round-robin (no overhead)':<46} {ideal_round_robin(seconds, slots):6.2f}s")
    print(
        f"  {'shardrun makespan (report.json)':<46} {span:6.2f}s  "
        f"{span / bound:5.3f}x bound  (runs: {fmt(bench.makespans)})"
    )
    print(
        f"  {'shardrun wall (whole CLI)':<46} {wall:6.2f}s  "
        f"{wall / bound:5.3f}x bound  (runs: {fmt(samples['shardrun'])})"
    )
    print(
        f"  {'round-robin, docker run per shard (wall)':<46} {rr:6.2f}s  "
        f"{rr / bound:5.3f}x bound  (runs: {fmt(samples['round_robin'])})"
    )
    print(
        f"  {'recording run (no timings: file order)':<46} {record_span:6.2f}s  "
        f"makespan, {record_wall:.2f}s wall"
    )

    # Did the measured runs start the longest first? The first `slots` shards started.
    first = sorted(bench.reports[-1]["shards"], key=lambda s: s["started"])[:slots]
    by_name = {shard_name(i): d for i, d in enumerate(seconds)}
    print(
        f"  first {slots} shards started (last run): "
        + ", ".join(f"{s['name']} ({by_name[s['name']]:g}s)" for s in first)
    )
    per_worker: dict[str, int] = {}
    for s in bench.reports[-1]["shards"]:
        per_worker[s["worker"]] = per_worker.get(s["worker"], 0) + 1
    print("  shards per worker (last run): " + ", ".join(f"{w} {n}" for w, n in per_worker.items()))

    run_extra, gaps = overheads(bench.reports, by_name)
    print(
        f"  per shard (measured runs): time beyond `sleep D` between start and exit seen "
        f"median {med(run_extra):.2f}s; gap from a shard's exit to the next start on its "
        f"slot (create + start) median {med(gaps):.2f}s, max {max(gaps):.2f}s"
    )

    verdict = "met" if span <= 1.10 * bound else "MISSED"
    print(
        f"\n(a) shardrun makespan {span:.2f}s = {span / bound:.3f}x the lower bound "
        f"{bound:.2f}s (target <= 1.10): {verdict}; wall {wall / bound:.3f}x"
    )
    print(f"(b) shardrun / round-robin: {wall / rr:.3f} wall/wall, {span / rr:.3f} makespan/wall")
    if bench.retried:
        print(f"\n{len(bench.retried)} shardrun run(s) taken again and left out of the figures:")
        for line in bench.retried:
            print("   ", line[:300])


if __name__ == "__main__":
    main()
