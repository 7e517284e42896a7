"""Benchmark: getting the image onto 4 workers, shardrun against `docker save | docker load`.

Workers: the default engine (it builds, so it is worker 1 and never loads), w1 over
tcp:// and w2 (its unix socket by default, `--w2 ssh` for ssh://; shardrun and the shell
baseline use the same URL), both dockerd 20.10 with a graph driver, and w3 over tcp://,
dockerd 26.1 on the containerd image store (shardrun sends it OCI layouts; `--no-w3`
leaves it out). The image is busybox + a 200 MB layer of random bytes (it does
not compress) + `COPY top.txt` as the last layer.

a. unchanged image: every worker already holds it. shardrun runs one `sleep 3` shard a
   worker (one slot each, so every worker is needed); its distribution time is the
   largest `load_seconds` of report.json (target: <= 0.5 s, 0 bytes sent). Baselines:
   `docker save IMG | docker -H W load` to every other worker, one after the other, and
   all at once (each one's time is printed too).
b. top layer changed: before every sample a new top.txt is written, so every method
   starts with workers holding the previous version and sends them the new one.
   shardrun's distribution (report.json: per worker, from the start of its delivery to
   the image being there, so it counts the save the loads wait on; with no full tarball
   needed, a thin tarball is cut straight from the save stream) against the same shell
   baselines on the new image (target: >= 3x faster than the parallel baseline, end to
   end). The build is outside both: `shardrun run` builds before it distributes, and
   the baselines are timed after the same build.

Samples of each method alternate (shardrun, serial, parallel, shardrun, ...); medians.
Images made here are removed from the three engines at the end, and the temp project too.
Usage: python bench/distribute.py [--runs N] [--size MB] [--w2 unix|ssh]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

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
    worker_hosts,
)

PROJECT = "shardrun-bench-distribute"
TAG = "shardrun-bench-distribute:latest"
# A worker lost during a run makes the sample meaningless: it is taken again, in (b) on a
# new change, so the workers' starting state is as fresh as before. (Seen here: two
# workers that need the same thin tarball write it through the same temp file name, and
# one of them fails with FileNotFoundError; and other tests restarting w1's daemon.)
ATTEMPTS = 4


class Bench:
    def __init__(self, root: Path, workers: dict[str, str]) -> None:
        self.root = root
        self.workers = workers  # display name -> URL; the first is the build engine
        self.others = list(workers.values())[1:]
        self.shardrun_run = [sys.executable, "-m", "shardrun", "run", "--plain"]
        for url in workers.values():
            # `default` is the same engine as the first URL, with a clearer report name.
            target = "default" if url == LOCAL else url
            self.shardrun_run += ["--worker", f"{target}*1"]
        self.lost: list[str] = []  # one line per sample taken again, and why
        self.phase = "warm-up"
        self.extra: dict[str, list] = {}  # per-sample facts besides the timed seconds

    def note(self, key: str, value) -> None:
        self.extra.setdefault(key, []).append(value)

    # --- the image -------------------------------------------------------------------

    def change_top(self) -> None:
        (self.root / "top.txt").write_text(f"{uuid.uuid4()}\n")

    def build(self) -> tuple[float, float]:
        """`shardrun build`: (wall seconds, BuildKit seconds); the rest is start + save."""
        wall, out = captured([sys.executable, "-m", "shardrun", "build", "--plain"], self.root)
        built = re.search(r"\bbuilt\s+\S+ in ([\d.]+)s", out)
        return wall, float(built.group(1)) if built else float("nan")

    # --- methods ---------------------------------------------------------------------

    def shardrun(self, scenario: str) -> float:
        """One `shardrun run`; returns its distribution time (largest load_seconds)."""
        for attempt in range(1, ATTEMPTS + 1):
            if scenario == "changed":
                self.change_top()
            wall, out = captured(self.shardrun_run, self.root)
            built = re.search(r"\bbuilt\s+\S+ in ([\d.]+)s", out)
            buildkit = float(built.group(1)) if built else float("nan")
            report = latest_report(self.root)
            workers = report["workers"]
            bad = [w for w in workers if w["lost"] or w["load"] not in ("none", "thin", "full")]
            if not bad:
                break
            for w in bad:
                self.lost.append(f"{self.phase}: attempt {attempt}: {w['name']}: {w['lost']}")
        else:
            sys.exit(
                f"shardrun lost a worker in {ATTEMPTS} attempts in a row:\n"
                + "\n".join(self.lost[-ATTEMPTS:])
            )
        self.note(f"{scenario}_buildkit", buildkit)
        self.note(f"{scenario}_wall", wall)
        self.note(
            f"{scenario}_loads",
            [(w["url"], w["load"], w["sent"], w["load_seconds"]) for w in workers],
        )
        self.note(f"{scenario}_full_size", max(w["full_size"] for w in workers))
        return max(w["load_seconds"] for w in workers)

    def shell(self, scenario: str, parallel: bool) -> float:
        """`docker save TAG | docker -H W load` to every worker but the build engine."""
        if scenario == "changed":
            self.change_top()
            self.build()  # the same build; its tarball is not used by the baseline
        pipes = [f"docker save {TAG} | docker -H {url} load -q" for url in self.others]
        start = time.perf_counter()
        if parallel:
            procs = [_pipeline(p) for p in pipes]
            done = _finish_times(procs, start)
            self.note(f"{scenario}_parallel_each", done)
            codes = [p.returncode for p in procs]
        else:
            codes = [_pipeline(p).wait() for p in pipes]
        seconds = time.perf_counter() - start
        if any(codes):
            sys.exit(f"a baseline pipeline failed (exit codes {codes}): {pipes}")
        return seconds


def _finish_times(procs: list[subprocess.Popen], start: float) -> list[float]:
    """Seconds from `start` until each process exited (polled every 10 ms)."""
    done: dict[int, float] = {}
    while len(done) < len(procs):
        for i, proc in enumerate(procs):
            if i not in done and proc.poll() is not None:
                done[i] = time.perf_counter() - start
        time.sleep(0.01)
    return [done[i] for i in range(len(procs))]


def _pipeline(script: str) -> subprocess.Popen:
    # bash for pipefail: a failed `docker save` must not pass for a fast load.
    return subprocess.Popen(["bash", "-o", "pipefail", "-c", script], stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=200, help="MB of the big bottom layer")
    parser.add_argument(
        "--w2",
        choices=("unix", "ssh"),
        default="unix",
        help="how both shardrun and the baseline reach worker w2",
    )
    parser.add_argument(
        "--no-w3",
        action="store_true",
        help="leave out w3, the worker on the containerd image store",
    )
    args = parser.parse_args()

    env = worker_hosts()
    workers = {
        "default (builds)": LOCAL,
        "w1": env["SHARDRUN_TEST_W1_TCP"],
        "w2": env["SHARDRUN_TEST_W2_UNIX" if args.w2 == "unix" else "SHARDRUN_TEST_W2_SSH"],
    }
    if not args.no_w3:
        workers["w3 (containerd store)"] = env["SHARDRUN_TEST_W3_TCP"]
    base = busybox()
    root = project(
        f'project = "{PROJECT}"\n'
        f'[image]\nbuild-args = {{ BASE_IMAGE = "{base}" }}\ntag = "{TAG}"\n'
        # One slot a worker and a shard more than the build engine can take at once: a
        # run never waits for a load no shard needs, and here every load is needed.
        f'[[shard]]\nname = "nap-{{index}}"\ncount = {len(workers)}\ncommand = "sleep 3"\n'
        'network = "none"\n',
        dockerfile=BIG_IMAGE_DOCKERFILE.format(size=args.size),
    )
    bench = Bench(root, workers)
    try:
        print(f"{load_note()} at the start")
        print("workers (the same URLs for shardrun and the shell baseline):")
        for name, url in workers.items():
            print(f"  {name:<17} {url}")
        # Warm-up: build, save, and a full load to w1 and w2, so all three hold the image.
        bench.change_top()
        bench.shardrun("unchanged")
        bench.extra.clear()
        bench.phase = "unchanged"
        print(
            f"image: busybox + {args.size} MB random layer + top.txt; "
            f"{args.runs} interleaved runs per method\n"
        )

        unchanged = interleaved(
            args.runs,
            shardrun=lambda: bench.shardrun("unchanged"),
            serial=lambda: bench.shell("unchanged", parallel=False),
            parallel=lambda: bench.shell("unchanged", parallel=True),
        )
        bench.phase = "changed"
        changed = interleaved(
            args.runs,
            shardrun=lambda: bench.shardrun("changed"),
            serial=lambda: bench.shell("changed", parallel=False),
            parallel=lambda: bench.shell("changed", parallel=True),
        )
        print(f"{load_note()} at the end\n")
        print_results(bench, unchanged, changed)
    finally:
        cleanup(PROJECT, root, list(workers.values()))


def print_results(bench: Bench, unchanged: dict, changed: dict) -> None:
    x = bench.extra
    med = statistics.median
    n_others = len(bench.others)
    rows = []
    for scenario, samples in (("unchanged", unchanged), ("changed", changed)):
        full = med(x["changed_full_size"])  # "none" loads report no size
        par = med(samples["parallel"])
        sent = [sum(s for _, _, s, _ in loads) for loads in x[f"{scenario}_loads"]]
        rows.append(
            (
                scenario,
                "shardrun distribution (report.json)",
                samples["shardrun"],
                par,
                f"{mb(med(sent))} sent",
            )
        )
        rows.append(
            (scenario, "shardrun run, whole (wall)", x[f"{scenario}_wall"], par, "with its build")
        )
        rows.append((scenario, "  of which BuildKit", x[f"{scenario}_buildkit"], par, ""))
        for method in ("serial", "parallel"):
            rows.append(
                (
                    scenario,
                    f"docker save | docker load, {method}",
                    samples[method],
                    par,
                    f"{mb(full * n_others)} sent",
                )
            )

    print(f"{'scenario':<10} {'method':<37} {'median':>8} {'÷ parallel':>10}  bytes / runs")
    for scenario, method, values, par, note in rows:
        m = med(values)
        runs = " ".join(f"{v:.2f}" for v in values)
        print(f"{scenario:<10} {method:<37} {m:7.2f}s {m / par:10.3f}  {note}  (runs: {runs})")

    print()
    for scenario in ("unchanged", "changed"):
        print(
            f"{scenario}: per worker, shardrun's load (mode, bytes sent, seconds of each run) "
            "and the parallel save|load to it:"
        )
        runs = x[f"{scenario}_loads"]
        shell = x.get(f"{scenario}_parallel_each", [])
        for i, url in enumerate(u for u, _, _, _ in runs[0]):
            each = [loads[i] for loads in runs]
            line = (
                f"    {url:<48} {' '.join(sorted({m for _, m, _, _ in each}))} "
                f"{mb(med([s for _, _, s, _ in each]))}, median {med([t for *_, t in each]):.2f}s "
                f"({' '.join(f'{t:.2f}' for *_, t in each)})"
            )
            if i > 0 and shell:  # the first is the build engine: no baseline load to it
                times = [sample[i - 1] for sample in shell]
                line += f"; save|load median {med(times):.2f}s"
            print(line)
    full = med(x["changed_full_size"])
    print(f"full tarball: {mb(full)}")

    dist_a = med(unchanged["shardrun"])
    sent_a = max(sum(s for _, _, s, _ in loads) for loads in x["unchanged_loads"])
    verdict = "met" if dist_a <= 0.5 and sent_a == 0 else "MISSED"
    print(
        f"\n(a) unchanged: shardrun distribution {dist_a:.2f}s, {sent_a} bytes sent "
        f"(target <= 0.5 s, 0 bytes): {verdict}"
    )
    dist_b, par_b = med(changed["shardrun"]), med(changed["parallel"])
    speedup = par_b / dist_b
    verdict = "met" if speedup >= 3 else "MISSED"
    print(
        f"(b) top layer changed, end to end (the save the loads wait on included): "
        f"shardrun {dist_b:.2f}s vs parallel save|load {par_b:.2f}s: {speedup:.1f}x "
        f"faster (target >= 3x): {verdict}"
    )
    modes = {mode for loads in x["changed_loads"] for _, mode, _, _ in loads}
    if "full" in modes:
        print("    note: some loads in (b) were full, not thin (see the per-worker lines)")
    if bench.lost:
        print(
            f"\nshardrun lost a worker in {len(bench.lost)} run(s); each was taken again "
            "(in (b) on a new change) and left out of the figures. A shardrun bug:"
        )
        for line in bench.lost:
            print("   ", line[:300])


if __name__ == "__main__":
    main()
