"""Benchmark: the image as a file for a hosted CI matrix (issue 16), and the matrix's balance.

The image: the Debian + Python base (shardrun-python-base:bookworm, made by
scripts/make-python-base) plus one layer that copies /usr/lib, /usr/share and /usr/bin
to /opt/copy: ordinary files (code, libraries, docs), not random bytes, so it compresses
as a real test image does (about 455 MB as a `docker save` archive). It is built on the
local engine once, untimed; later builds are BuildKit cache hits.

a. The image file, --runs interleaved samples of each (common.interleaved):
     .tar / .tar.gz / .tar.zst   `shardrun build --plain --output FILE`, with the cached
                                 tarball (.shardrun/cache/<id>.tar) removed first, so
                                 every sample pays the `docker save` as the baseline does
     docker save | gzip -1       the baseline: `docker save TAG | gzip -1 > FILE.tar.gz`
     docker save (context)       `docker save TAG > FILE.tar`: the save alone
   Wall seconds and the file's size, medians with their spread, as ratios to the baseline.
   Target: the .tar.zst no larger than gzip -1's and written in <= 0.5x its time.
b. One job's start-up, from the file to the first shard run, on w1 (a dockerd 20.10 over
   its unix socket, from `scripts/worker-hosts env`) holding none of the image: before
   every sample the image is removed from w1 (by the project label, which loaded copies
   keep, so its `shardrun/image:<id>` tags go too), and each shardrun sample runs in a
   fresh copy of the project (no .shardrun) whose one shard is `true`:
     shardrun .tar.zst           `shardrun run --plain --image FILE.tar.zst --worker W1`
     by hand .tar.gz             `docker -H W1 load -i FILE.tar.gz` (the baseline's file)
                                 then `docker -H W1 run --rm --network none TAG true`
     shardrun .tar (context)     the same run from the .tar file: no decompression
   Wall seconds; shardrun's are split by its report.json into start-up, import (the
   file decompressed into the cache and verified), load (to w1) and the rest.
   Target: shardrun / by hand <= 1.0.
c. Balance: a skewed suite of 12 shards `sleep S` (SLEEPS, 26.3 s in all, longest 6 s:
   the lower bound is total / 4 = 6.575 s, not the longest) in a second project whose
   image is the bare base. One recording run (`shardrun run`, 2 slots) writes
   timings.json; then `shardrun build --output img.tar.zst --partitions 4` plans it
   (img.plan.json). Each sample runs the 4 partitions one after another on the local
   engine, `shardrun run --plain --image img.tar.zst --partition K/4 --jobs 1`, as 4 CI
   machines of one slot each would: a partition's time is its makespan in report.json
   (first shard start to last shard finish: its shards' durations plus the gaps between
   them). Printed: the plan's expected slowest partition / its lower bound (from the
   recorded times), and the measured slowest partition / the lower bound
   max(longest shard, total / 4) of the shards' measured durations in the same sample.
   Target: <= 1.10.
Images made here are removed from the local engine and w1 at the end, and the temp folders.
Usage: python bench/matrix.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    LOCAL,
    ORDINARY_IMAGE_DOCKERFILE,
    PYTHON_BASE,
    captured,
    cleanup,
    interleaved,
    load_note,
    mb,
    project,
    python_base,
    remove_images,
)

PROJECT = "shardrun-bench-matrix"
TAG = "shardrun-bench-matrix:latest"
BALANCE_PROJECT = "shardrun-bench-matrix-balance"
BASE = PYTHON_BASE
DOCKERFILE = ORDINARY_IMAGE_DOCKERFILE
START_TOML = f"""\
project = "{PROJECT}"
[image]
tag = "{TAG}"
[[shard]]
name = "start"
command = ["true"]
network = "none"
"""
PARTITIONS = 4
# Seconds each shard sleeps: skewed (a long head, a tail of short ones); 26.3 s in all.
SLEEPS = [6, 4.5, 3.5, 3, 2.5, 2, 1.5, 1, 1, 0.5, 0.5, 0.3]
SHARDRUN = [sys.executable, "-m", "shardrun"]
FORMATS = (".tar", ".tar.gz", ".tar.zst")


def balance_toml() -> str:
    lines = [f'project = "{BALANCE_PROJECT}"', '[defaults]\nnetwork = "none"\ntimeout = "5m"']
    for i, seconds in enumerate(SLEEPS, 1):
        lines.append(f'[[shard]]\nname = "s{i:02d}"\ncommand = ["sleep", "{seconds:g}"]')
    return "\n".join(lines) + "\n"


def lower_bound(seconds: list[float], parts: int = PARTITIONS) -> float:
    return max(max(seconds), sum(seconds) / parts)


def run_quiet(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def sh(script: str) -> float:
    """Wall seconds of a bash pipeline; pipefail, so a failed `docker save` cannot pass."""
    start = time.perf_counter()
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{script} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return seconds


class Bench:
    def __init__(self, root: Path, files: Path, w1: str) -> None:
        self.root = root  # the build job's project
        self.files = files  # image files, outside the build context
        self.w1 = w1
        self.image_id = ""
        self.sizes: dict[str, list[int]] = {}
        self.buildkit: dict[str, list[float]] = {}
        self.parts: dict[str, list[dict[str, float]]] = {}  # start-up breakdowns
        self.jobs = 0

    def note(self, store: dict, key: str, value) -> None:
        store.setdefault(key, []).append(value)

    # --- a. the image file -------------------------------------------------------------

    def write(self, suffix: str) -> float:
        for path in (self.root / ".shardrun" / "cache").glob("*.tar"):
            path.unlink()
        out = self.files / f"image{suffix}"
        out.unlink(missing_ok=True)
        wall, stdout = captured([*SHARDRUN, "build", "--plain", "--output", str(out)], self.root)
        self.image_id = stdout.splitlines()[-2]
        built = re.search(r"\bbuilt\s+\S+ in ([\d.]+)s", stdout)
        self.note(self.buildkit, suffix, float(built.group(1)) if built else float("nan"))
        self.note(self.sizes, suffix, out.stat().st_size)
        return wall

    def by_hand_gzip(self) -> float:
        out = self.files / "by-hand.tar.gz"
        seconds = sh(f"docker save {TAG} | gzip -1 > {out}")
        self.note(self.sizes, "gzip", out.stat().st_size)
        return seconds

    def by_hand_save(self) -> float:
        out = self.files / "by-hand.tar"
        seconds = sh(f"docker save {TAG} > {out}")
        self.note(self.sizes, "save", out.stat().st_size)
        return seconds

    # --- b. a job's start-up ------------------------------------------------------------

    def clear_w1(self) -> None:
        remove_images(PROJECT, [self.w1])
        run_quiet(["docker", "-H", self.w1, "rmi", "-f", TAG])
        if run_quiet(["docker", "-H", self.w1, "image", "inspect", self.image_id]).returncode == 0:
            sys.exit(f"{self.image_id} is still on {self.w1} after rmi")

    def job(self, suffix: str) -> float:
        """`shardrun run --image` in a fresh copy of the project, w1 its only worker."""
        self.clear_w1()
        self.jobs += 1
        job = self.files / f"job-{self.jobs}"
        job.mkdir()
        for name in ("Dockerfile.test", "shards.toml"):
            shutil.copy(self.root / name, job / name)
        image = self.files / f"image{suffix}"
        launched = time.time()
        wall, _ = captured(
            [*SHARDRUN, "run", "--plain", "--image", str(image), "--worker", self.w1], job
        )
        report = json.loads((job / ".shardrun" / "runs" / "latest" / "report.json").read_text())
        shutil.rmtree(job)
        (worker,) = report["workers"]
        (shard,) = report["shards"]
        ok = shard["status"] == "PASS" and report["image_id"] == self.image_id
        if not ok or worker["load"] != "full":  # full: w1 held none of it
            sys.exit(f"job from {image}: {shard['status']}, load {worker['load']}")
        save = report["phases"]["save"]
        load_end = worker["load_started"] + worker["load_seconds"]
        self.note(
            self.parts,
            suffix,
            {
                "start-up": report["started"] - launched,
                "import": save["finished"] - save["started"],
                "load": worker["load_seconds"],
                "to shard": shard["started"] - load_end,
                "first shard at": shard["started"] - launched,
                "rest": launched + wall - shard["started"],
            },
        )
        return wall

    def by_hand_load(self) -> float:
        self.clear_w1()
        image = self.files / "by-hand.tar.gz"
        start = time.perf_counter()
        sh(f"docker -H {self.w1} load -q -i {image} >/dev/null")
        loaded = time.perf_counter()
        sh(f"docker -H {self.w1} run --rm --network none {TAG} true")
        end = time.perf_counter()
        self.note(self.parts, "by hand", {"load": loaded - start, "run": end - loaded})
        return end - start


class Balance:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.image = root.parent / f"{root.name}-img.tar.zst"
        self.plan: dict = {}
        self.recorded: dict[str, float] = {}
        self.spans: list[list[float]] = []  # per sample, each partition's makespan
        self.bounds: list[float] = []  # per sample, the bound of its measured durations
        self.longest: list[float] = []

    def prepare(self) -> float:
        wall, _ = captured([*SHARDRUN, "run", "--plain"], self.root)  # the recording run
        timings = json.loads((self.root / ".shardrun" / "timings.json").read_text())
        self.recorded = {k: float(v) for k, v in timings["durations"].items()}
        captured(
            [*SHARDRUN, "build", "--plain", "--output", str(self.image), "--partitions", "4"],
            self.root,
        )
        plan = self.image.with_name(self.image.name.removesuffix(".tar.zst") + ".plan.json")
        self.plan = json.loads(plan.read_text())
        return wall

    def sample(self) -> float:
        spans, durations = [], []
        for k in range(1, PARTITIONS + 1):
            argv = [*SHARDRUN, "run", "--plain", "--image", str(self.image)]
            captured([*argv, "--partition", f"{k}/{PARTITIONS}", "--jobs", "1"], self.root)
            shards = json.loads(
                (self.root / ".shardrun" / "runs" / "latest" / "report.json").read_text()
            )["shards"]
            planned = {s["name"] for s in self.plan["partitions"][k - 1]}
            if {s["name"] for s in shards} != planned or any(s["status"] != "PASS" for s in shards):
                sys.exit(f"partition {k}: ran {[(s['name'], s['status']) for s in shards]}")
            spans.append(max(s["finished"] for s in shards) - min(s["started"] for s in shards))
            durations += [s["finished"] - s["started"] for s in shards]
        self.spans.append(spans)
        self.bounds.append(lower_bound(durations))
        self.longest.append(max(durations))
        return max(spans) / self.bounds[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python_base()
    env = run_quiet([str(Path(__file__).resolve().parents[1] / "scripts" / "worker-hosts"), "env"])
    hosts = dict(line.split("=", 1) for line in env.stdout.splitlines() if "=" in line)
    if "SHARDRUN_TEST_W1_UNIX" not in hosts:
        sys.exit(f"scripts/worker-hosts env names no w1:\n{env.stdout}{env.stderr}")
    w1 = hosts["SHARDRUN_TEST_W1_UNIX"]

    root = project(START_TOML, DOCKERFILE)
    balance_root = project(balance_toml(), f"FROM {BASE}\n")
    files = Path(tempfile.mkdtemp(prefix="shardrun-bench-matrix-files-"))
    bench = Bench(root, files, w1)
    balance = Balance(balance_root)
    try:
        print(f"{load_note()} at the start")
        bench.write(".tar.zst")  # warm-up: the build itself, untimed
        bench.sizes.clear()
        bench.buildkit.clear()
        print(
            f"image {bench.image_id[7:19]}: {BASE} + a copy of /usr/lib, /usr/share and "
            f"/usr/bin; {args.runs} interleaved runs per method\n"
        )
        writes = interleaved(
            args.runs,
            **{f"shardrun {s}": (lambda s=s: bench.write(s)) for s in FORMATS},
            **{"docker save | gzip -1": bench.by_hand_gzip, "docker save": bench.by_hand_save},
        )
        starts = interleaved(
            args.runs,
            **{
                "shardrun .tar.zst": lambda: bench.job(".tar.zst"),
                "by hand .tar.gz": bench.by_hand_load,
                "shardrun .tar": lambda: bench.job(".tar"),
            },
        )
        record_wall = balance.prepare()
        ratios = interleaved(args.runs, balance=balance.sample)["balance"]
        print(f"{load_note()} at the end\n")
        print_writes(bench, writes)
        print_starts(bench, starts)
        print_balance(balance, ratios, record_wall)
    finally:
        if bench.image_id:
            bench.clear_w1()
        cleanup(BALANCE_PROJECT, balance_root, [LOCAL, w1])
        shutil.rmtree(files, ignore_errors=True)
        for path in balance_root.parent.glob(f"{balance_root.name}-img.*"):
            path.unlink()
        cleanup(PROJECT, root, [LOCAL, w1])


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def row(label: str, values: list[float], base: float, note: str = "") -> str:
    med = statistics.median(values)
    return (
        f"  {label:<26} {med:6.2f}s  spread {min(values):.2f}-{max(values):.2f}s  "
        f"ratio {med / base:5.2f}{note}  (runs: {fmt(values)})"
    )


def print_writes(bench: Bench, writes: dict[str, list[float]]) -> None:
    med = statistics.median
    base = med(writes["docker save | gzip -1"])
    gz_size = med(bench.sizes["gzip"])
    raw = med(bench.sizes["save"])
    print("a. the image file: wall time and size, ratios to `docker save | gzip -1`")
    keys = {f"shardrun {s}": s for s in FORMATS}
    keys.update({"docker save | gzip -1": "gzip", "docker save": "save"})
    for label, key in keys.items():
        size = med(bench.sizes[key])
        note = f"  {mb(size):>9} ({size / gz_size:4.2f}x gzip's, {size / raw:4.2f}x the tar)"
        if key in bench.buildkit:
            note += f"  BuildKit {med(bench.buildkit[key]):.2f}s"
        print(row(label, writes[label], base, note))
    zst, zst_size = med(writes["shardrun .tar.zst"]), med(bench.sizes[".tar.zst"])
    met = zst_size <= gz_size and zst <= 0.5 * base
    print(
        f"  target: .tar.zst size <= gzip -1's ({zst_size / gz_size:.2f}x) and time <= 0.5x "
        f"({zst / base:.2f}x): {'met' if met else 'MISSED'}\n"
    )


def print_starts(bench: Bench, starts: dict[str, list[float]]) -> None:
    med = statistics.median
    base = med(starts["by hand .tar.gz"])
    print("b. one job's start-up on w1 (lacking the image), wall time, ratios to by hand")
    for label, values in starts.items():
        print(row(label, values, base))
    for label, key in (
        ("shardrun .tar.zst", ".tar.zst"),
        ("by hand .tar.gz", "by hand"),
        ("shardrun .tar", ".tar"),
    ):
        parts = bench.parts[key]
        cells = ", ".join(f"{name} {med([p[name] for p in parts]):.2f}s" for name in parts[0])
        print(f"    {label:<18} medians: {cells}")
    ratio = med(starts["shardrun .tar.zst"]) / base
    print(
        f"  target: shardrun / by hand <= 1.0 ({ratio:.2f}): {'met' if ratio <= 1 else 'MISSED'}\n"
    )


def print_balance(balance: Balance, ratios: list[float], record_wall: float) -> None:
    med = statistics.median
    expected = balance.plan["expected"]
    plan_bound = lower_bound(list(balance.recorded.values()))
    print(
        f"c. balance: {len(SLEEPS)} shards sleeping {sum(SLEEPS):g}s (longest {max(SLEEPS):g}s; "
        f"bound of the sleeps {lower_bound(SLEEPS):.3f}s = total / {PARTITIONS}) over "
        f"{PARTITIONS} partitions, --jobs 1 each; recording run {record_wall:.2f}s wall"
    )
    for k, part in enumerate(balance.plan["partitions"]):
        names = " ".join(f"{s['name']}({SLEEPS[int(s['name'][1:]) - 1]:g})" for s in part)
        spans = [sample[k] for sample in balance.spans]
        print(
            f"    partition {k + 1}: expected {expected[k]:5.2f}s, measured median "
            f"{med(spans):5.2f}s (runs: {fmt(spans)}): {names}"
        )
    print(
        f"  plan: expected slowest {max(expected):.2f}s / bound {plan_bound:.2f}s of the "
        f"recorded times = {max(expected) / plan_bound:.3f}"
    )
    slowest = [max(s) for s in balance.spans]
    print(
        f"  measured: slowest partition median {med(slowest):.2f}s (runs: {fmt(slowest)}), "
        f"bound of the measured durations median {med(balance.bounds):.2f}s "
        f"(runs: {fmt(balance.bounds)}; longest shard {med(balance.longest):.2f}s)"
    )
    ratio = med(ratios)
    print(
        f"  target: slowest / bound <= 1.10 ({ratio:.3f}, runs: {' '.join(f'{r:.3f}' for r in ratios)}): "
        f"{'met' if ratio <= 1.10 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
