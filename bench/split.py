"""Benchmark: `split` (files shared out by their learned times) against hand and older splits.

Two suites: `--suite names` (the default), files of one folder against a split by name;
`--suite setup` (issue 18), directories that share a costly setup, against a split by
directory and against the file-level longest-first split. Both run in containers of the
Debian + Python base (shardrun-python-base:bookworm, made by scripts/make-python-base) on
the local engine, 4 slots (`--jobs 4`), 4 groups (count = 4).

--suite names
A synthetic pytest suite of 48 files, one test each that sleeps a fixed time (DURATIONS,
96.6 s in all): 6 files of 6-9 s, 13 of 1-4.5 s, 29 of 0.2-0.9 s.

The long files are placed on purpose: 4 of the 6 are in the first quarter by name, so
4 groups of 12 files in name order are badly unbalanced (38.7 s of sleep in the first,
17.0-21.2 s in the others). That is what an unlucky-by-name split looks like (slow tests
often share a prefix: test_api_*, test_integration_*); with the long files spread evenly
over the names such a split would do much better and (b) would say less. Note that
shardrun itself, with no times, does not split in contiguous quarters: its longest-first
split with every file at the same estimate deals the files out in name order, file i to
group i mod 4 (the recording run shows what that gives here).

A first `shardrun run` records the per-file times (timings.json, from the JUnit files);
it is not timed. Then, interleaved, --runs times each (common.interleaved):
  split    shardrun run: [[shard]] tests-{index}, count = 4, split = ["suite/test_*.py"]
  byname   shardrun run: 4 [[shard]] tables byname-1..4, each with its fixed quarter of
           the files in name order: the same image, command, JUnit collection and
           container start-up as `split`
  xargs    the same 4 name-order groups as `xargs -P4 -L1 docker run --rm IMAGE pytest ...`
  noop     shardrun run: 4 shards of pytest on one test that does nothing: what a group
           costs beyond its sleeps (container, pytest start-up, shardrun's own steps)
For each shardrun variant: the wall time of the whole CLI (what a user waits for) and the
makespan from report.json (first shard start to last shard finish).
Results (medians):
  (a) split against the lower bound max(longest file, total / 4) of the sleeps: target
      <= 1.10; the verdict uses the plain bound, as the issue asks; the bound plus the
      noop costs is printed beside it.
  (b) split / byname, wall over wall: target <= 0.80; also makespans, and split / xargs.

--suite setup
A package suite/ of 6 directories (SETUP_DIRS; each a package, since file names repeat
across them), 40 files, one test each that sleeps 0.2-3.0 s (55.4 s in all), and in each
directory a conftest.py whose import sleeps CONFTEST_SLEEP (1 s): the directory's shared
setup, paid once by every pytest process that collects any of its files (6 s if each
directory is paid once). The directories are uneven: api 12 files 18.0 s, db 9 / 13.1 s,
models 7 / 10.3 s, cli 5 / 6.7 s, utils 4 / 4.2 s, web 3 / 3.1 s; with its setup, api
alone (19.0 s) is above a quarter of the whole (15.35 s), so a split that keeps every
directory whole is off by about a quarter, and one must be cut to balance.
A first `shardrun run` of `affinity` records the per-file times and the setup
(timings.json "files" and "setup"); it is not timed. Then, interleaved, --runs times each:
  affinity  shardrun run: [[shard]] tests-{index}, count = 4,
            split = ["suite/**/test_*.py"] (today's split: directories whole where
            balance allows, shardrun.plan.affinity)
  bydir     shardrun run: 4 [[shard]] tables bydir-1..4 that give whole directories as
            pytest's arguments, the hand split a user would write (BY_DIRECTORY: the
            largest directories alone, the smaller two by two, largest with smallest)
  filelpt   shardrun run: 4 [[shard]] tables filelpt-1..4 with the files that
            shardrun.plan.split.groups (the file-level longest-first split shardrun used
            before) gives from the recording run's timings.json "files"
All three: the same image, command (pytest, JUnit to /tmp/junit.xml, collected by
shardrun) and container start-up. For each: the wall time of the whole CLI and the
makespan from report.json (first shard start to last shard finish).
Results (medians):
  (a) affinity / bydir, wall over wall: target <= 0.97
  (b) affinity / filelpt, wall over wall: target <= 0.92
  (c) the affinity makespan against the lower bound that counts each directory's setup
      once, max(longest file + its setup, (all sleeps + 6 x CONFTEST_SLEEP) / 4), from
      the known sleeps: target <= 1.10
Printed beside them: each variant's groups with their sleeps and setups (what they would
take with no other cost), each shard's measured time beyond that (container, interpreter,
pytest), the setup shardrun learned, and `shardrun list` after the last run.

The temp project and its images are removed at the end.
Usage: python bench/split.py [--suite names|setup] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

from common import LOCAL, cleanup, interleaved, latest_report, load_note, project, python_base

from shardrun.plan import affinity, split

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "shardrun-bench-split"
BASE = "shardrun-python-base:bookworm"
SLOTS = 4
# Seconds each file's test sleeps, test_00.py .. test_47.py in name order; one line per
# quarter of 12. 6 long (>= 6 s), 4 of them in the first quarter.
# fmt: off
DURATIONS = [
    0.3, 9.0, 0.6, 8.5, 2.6, 0.2, 7.5, 0.7, 1.6, 7.0, 0.4, 0.3,
    0.8, 0.2, 4.0, 0.5, 0.3, 2.4, 0.8, 0.4, 8.0, 0.6, 1.4, 0.3,
    0.5, 3.0, 0.2, 0.9, 4.5, 0.4, 0.7, 2.2, 0.3, 0.7, 3.4, 0.2,
    0.6, 0.4, 8.0, 0.3, 2.0, 0.8, 0.5, 3.8, 0.2, 2.8, 0.6, 1.2,
]
# fmt: on
FILES = [f"suite/test_{i:02d}.py" for i in range(len(DURATIONS))]
SECONDS = dict(zip(FILES, DURATIONS, strict=True))
PYTEST = "python3 -m pytest -q -p no:cacheprovider --junitxml=/tmp/junit.xml"

DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY suite/ /src/suite/
COPY noop/ /src/noop/
WORKDIR /src
"""


def name_order_groups() -> list[list[str]]:
    size = len(FILES) // SLOTS
    return [FILES[i * size : (i + 1) * size] for i in range(SLOTS)]


def shards_toml() -> str:
    lines = [
        f'project = "{PROJECT}"',
        f'[image]\nbuild-args = {{ BASE_IMAGE = "{BASE}" }}',
        '[defaults]\nnetwork = "none"\ntimeout = "5m"\njunit = "/tmp/junit.xml"',
        (
            f'[[shard]]\nname = "tests-{{index}}"\ncount = {SLOTS}\n'
            f'split = ["suite/test_*.py"]\ncommand = "{PYTEST} {{files}}"'
        ),
    ]
    for i, group in enumerate(name_order_groups(), 1):
        lines.append(f'[[shard]]\nname = "byname-{i}"\ncommand = "{PYTEST} {" ".join(group)}"')
    lines.append(
        f'[[shard]]\nname = "noop-{{index}}"\ncount = {SLOTS}\n'
        f'command = "{PYTEST} noop/test_noop.py"'
    )
    return "\n".join(lines) + "\n"


def write_suite(root: Path) -> None:
    for name, seconds in SECONDS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"import time\n\n\ndef test_it():\n    time.sleep({seconds})\n")
    (root / "noop").mkdir()
    (root / "noop" / "test_noop.py").write_text("def test_nothing():\n    pass\n")


def lower_bound(seconds: list[float], slots: int) -> float:
    return max(max(seconds), sum(seconds) / slots)


def ideal_lpt(seconds: list[float], slots: int) -> float:
    loads = [0.0] * slots
    for d in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += d
    return max(loads)


def sleep_of(files: list[str]) -> float:
    return sum(SECONDS[f] for f in files)


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.argv = [sys.executable, "-m", "shardrun", "run", "--plain", "--jobs", str(SLOTS)]
        self.spans: dict[str, list[float]] = {"split": [], "byname": [], "noop": []}
        self.noop_shards: list[float] = []  # each noop shard's finished - started
        # Per split run: the file times shardrun had before it, and the groups it chose.
        self.split_runs: list[tuple[dict[str, float], list[list[str]]]] = []
        self.image_id = ""

    def shardrun(self, variant: str, pattern: str) -> tuple[float, dict]:
        start = time.perf_counter()
        done = subprocess.run(
            [*self.argv, "--shard", pattern],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(
                f"shardrun run --shard {pattern} exited {done.returncode}:\n"
                f"{done.stdout}{done.stderr}"
            )
        report = latest_report(self.root)
        shards = report["shards"]
        bad = [s["name"] for s in shards if s["status"] != "PASS"]
        if bad or len(shards) != SLOTS:
            sys.exit(f"{variant}: {len(shards)} shards, not PASS: {bad}")
        self.spans[variant].append(
            max(s["finished"] for s in shards) - min(s["started"] for s in shards)
        )
        self.image_id = report["image_id"]
        return wall, report

    def known(self) -> dict[str, float]:
        path = self.root / ".shardrun" / "timings.json"
        return json.loads(path.read_text()).get("files", {}) if path.exists() else {}

    def split(self) -> float:
        before = self.known()
        wall, report = self.shardrun("split", "tests-*")
        by_name = {s["name"]: s["options"]["files"] for s in report["shards"]}
        self.split_runs.append((before, [by_name[f"tests-{i}"] for i in range(1, SLOTS + 1)]))
        return wall

    def byname(self) -> float:
        return self.shardrun("byname", "byname-*")[0]

    def noop(self) -> float:
        wall, report = self.shardrun("noop", "noop-*")
        self.noop_shards += [s["finished"] - s["started"] for s in report["shards"]]
        return wall

    def xargs(self) -> float:
        lines = "".join(" ".join(group) + "\n" for group in name_order_groups())
        argv = [
            "xargs",
            "-P",
            str(SLOTS),
            "-L",
            "1",
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            self.image_id,
            *PYTEST.split(),
        ]
        start = time.perf_counter()
        done = subprocess.run(argv, input=lines, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"xargs baseline exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--suite",
        choices=("names", "setup"),
        default="names",
        help="names: split against a split by name (the default); setup: "
        "directories sharing a setup (issue 18)",
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python_base()
    if args.suite == "setup":
        main_setup(args.runs)
    else:
        main_names(args.runs)


def main_names(runs: int) -> None:
    root = project(shards_toml(), DOCKERFILE)
    write_suite(root)
    bench = Bench(root)
    try:
        print(f"{load_note()} at the start")
        print(
            f"{len(FILES)} test files sleeping {sum(DURATIONS):.1f}s in all (longest "
            f"{max(DURATIONS):g}s) on {SLOTS} slots of the local engine (--jobs {SLOTS})"
        )
        # The recording run: no file times yet. Also the warm-up (build, save).
        record_wall = bench.split()
        record_span = bench.spans["split"].pop()
        _, record_groups = bench.split_runs.pop()
        learned = bench.known()
        if set(learned) != set(FILES):
            sys.exit(
                f"timings.json has times for {len(learned)} of {len(FILES)} files "
                "after the recording run"
            )
        after_record = dict(learned)

        samples = interleaved(
            runs, split=bench.split, byname=bench.byname, xargs=bench.xargs, noop=bench.noop
        )
        print(f"{load_note()} at the end")
        print_results(bench, samples, runs, record_wall, record_span, record_groups, after_record)
    finally:
        cleanup(PROJECT, root, [LOCAL])


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def line(label: str, values: list[float], bound: float | None = None) -> str:
    med = statistics.median(values)
    spread = f"spread {max(values) - min(values):4.2f}s"
    vs = f"  {med / bound:5.3f}x bound" if bound else ""
    return f"  {label:<44} {med:6.2f}s{vs}  {spread}  (runs: {fmt(values)})"


def print_results(
    bench: Bench,
    samples: dict[str, list[float]],
    runs: int,
    record_wall: float,
    record_span: float,
    record_groups: list[list[str]],
    after_record: dict[str, float],
) -> None:
    med = statistics.median
    bound = lower_bound(DURATIONS, SLOTS)
    quarters = [sleep_of(g) for g in name_order_groups()]
    noop_shard, noop_wall = med(bench.noop_shards), med(samples["noop"])

    print(f"\n{runs} interleaved runs each; medians, spread = max - min:")
    print(f"  {'lower bound max(longest, total/4) of sleeps':<44} {bound:6.2f}s")
    print(
        f"  {'  + a noop shard (container + pytest)':<44} {bound + noop_shard:6.2f}s  "
        "(for makespans)"
    )
    print(f"  {'  + a noop run (whole CLI)':<44} {bound + noop_wall:6.2f}s  (for wall times)")
    print(f"  {'ideal longest-first split (no overhead)':<44} {ideal_lpt(DURATIONS, SLOTS):6.2f}s")
    print(
        f"  {'ideal name-order quarters (no overhead)':<44} {max(quarters):6.2f}s  "
        f"(quarters {fmt(quarters)})"
    )
    print(line("split: shardrun makespan (report.json)", bench.spans["split"], bound))
    print(line("split: shardrun wall (whole CLI)", samples["split"], bound))
    print(line("byname: shardrun makespan (report.json)", bench.spans["byname"], bound))
    print(line("byname: shardrun wall (whole CLI)", samples["byname"], bound))
    print(line("xargs -P4 docker run, name order (wall)", samples["xargs"], bound))
    print(line("noop: shardrun makespan (report.json)", bench.spans["noop"]))
    print(line("noop: shardrun wall (whole CLI)", samples["noop"]))
    print(line("noop: one shard, finished - started", bench.noop_shards))
    record_sleep = max(sleep_of(g) for g in record_groups)
    print(
        f"  recording run (no file times yet): makespan {record_span:.2f}s, wall "
        f"{record_wall:.2f}s; its largest group sleeps {record_sleep:.1f}s "
        f"(groups: {fmt([sleep_of(g) for g in record_groups])})"
    )

    span, wall = med(bench.spans["split"]), med(samples["split"])
    by_span, by_wall = med(bench.spans["byname"]), med(samples["byname"])
    xargs = med(samples["xargs"])
    print(
        f"\n(a) split makespan {span:.2f}s = {span / bound:.3f}x the lower bound {bound:.2f}s "
        f"(target <= 1.10): {'met' if span <= 1.10 * bound else 'MISSED'}"
    )
    print(
        f"    split wall     {wall:.2f}s = {wall / bound:.3f}x the lower bound "
        f"(target <= 1.10): {'met' if wall <= 1.10 * bound else 'MISSED'}"
    )
    print(
        f"    beside the bound plus the noop costs: makespan "
        f"{span / (bound + noop_shard):.3f}x, wall {wall / (bound + noop_wall):.3f}x"
    )
    print(
        f"(b) split / byname, wall/wall: {wall / by_wall:.3f} (target <= 0.80): "
        f"{'met' if wall <= 0.80 * by_wall else 'MISSED'}; makespan/makespan "
        f"{span / by_span:.3f}"
    )
    print(
        f"    split / xargs name-order quarters, wall/wall: {wall / xargs:.3f}; "
        f"byname / xargs {by_wall / xargs:.3f}"
    )

    print_groups(bench, after_record)


def print_groups(bench: Bench, after_record: dict[str, float]) -> None:
    before, groups = bench.split_runs[-1]
    estimate = split.estimates(FILES, before)
    print(
        "\ngroups shardrun chose in the last run (sleep = the files' real sleeps, "
        "est = its estimate from timings.json):"
    )
    for i, group in enumerate(groups, 1):
        est = sum(estimate[f] for f in group)
        names = " ".join(f"{Path(f).stem[5:]}({SECONDS[f]:g})" for f in group)
        print(
            f"  tests-{i}: {len(group):2d} files, sleep {sleep_of(group):5.1f}s, "
            f"est {est:5.1f}s: {names}"
        )

    replanned = [sorted(g) for g in split.groups(FILES, SLOTS, before)]
    same = sorted(map(sorted, groups)) == sorted(replanned)
    changed = sum(
        1
        for a, b in pairwise(bench.split_runs)
        if sorted(map(sorted, a[1])) != sorted(map(sorted, b[1]))
    )
    print(
        f"  split.groups() on the times it had gives {'the same' if same else 'OTHER'} "
        f"groups; the groups changed {changed} time(s) over the {len(bench.split_runs)} "
        "measured runs; largest group's sleep per run: "
        + fmt([max(sleep_of(g) for g in run[1]) for run in bench.split_runs])
    )

    def learned_line(label: str, known: dict[str, float]) -> str:
        extra = [known[f] - SECONDS[f] for f in FILES]
        long = [f for f in FILES if SECONDS[f] >= 6]
        ratios = " ".join(f"{known[f] / SECONDS[f]:.2f}" for f in long)
        return (
            f"  {label}: {sum(known.values()):.1f}s for {sum(DURATIONS):.1f}s of sleeps; "
            f"learned - real per file median {statistics.median(extra):+.2f}s "
            f"(min {min(extra):+.2f}, max {max(extra):+.2f}); learned / real for the "
            f"{len(long)} long files: {ratios}"
        )

    print("per-file times in timings.json:")
    print(learned_line("after the recording run", after_record))
    print(learned_line("after the last run", bench.known()))


# --suite setup (issue 18): directories that share a costly setup.

SETUP_PROJECT = "shardrun-bench-split-setup"
CONFTEST_SLEEP = 1.0  # seconds the import of each directory's conftest.py sleeps
# Seconds each file's test sleeps, by directory: suite/<dir>/<name>.py. The names repeat
# across directories, as in real suites (so each directory is a package).
# fmt: off
SETUP_DIRS: dict[str, dict[str, float]] = {
    "api": {"test_auth": 2.6, "test_basic": 0.4, "test_errors": 1.9, "test_items": 3.0,
            "test_orders": 1.2, "test_pagination": 0.8, "test_search": 2.2,
            "test_sessions": 1.5, "test_upload": 1.7, "test_users": 1.0,
            "test_versions": 0.3, "test_webhooks": 1.4},
    "db": {"test_basic": 0.9, "test_indexes": 2.4, "test_migrations": 2.8, "test_pool": 0.6,
           "test_queries": 2.0, "test_schema": 1.1, "test_transactions": 1.6,
           "test_types": 0.3, "test_views": 1.4},
    "models": {"test_basic": 0.8, "test_errors": 0.4, "test_fields": 2.1,
               "test_relations": 2.5, "test_serialize": 1.5, "test_users": 1.8,
               "test_validation": 1.2},
    "cli": {"test_basic": 0.4, "test_config": 1.8, "test_errors": 0.9, "test_export": 2.2,
            "test_import": 1.4},
    "utils": {"test_basic": 0.2, "test_dates": 1.3, "test_paths": 0.8, "test_text": 1.9},
    "web": {"test_basic": 0.5, "test_forms": 1.6, "test_templates": 1.0},
}
# fmt: on
SETUP_SECONDS = {
    f"suite/{d}/{name}.py": t for d, files in SETUP_DIRS.items() for name, t in files.items()
}
SETUP_FILES = sorted(SETUP_SECONDS)
# The hand split by directory: the two largest alone, the other four two by two, the
# largest with the smallest (what longest-first over the directories' totals gives too).
BY_DIRECTORY = [["api"], ["db"], ["models", "web"], ["cli", "utils"]]

SETUP_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY pytest.ini /src/
COPY suite/ /src/suite/
WORKDIR /src
"""


def setup_toml(file_lpt: list[list[str]]) -> str:
    """The three variants' shards; `file_lpt` (the old split's groups) is known only once
    the recording run has written the file times."""
    lines = [
        f'project = "{SETUP_PROJECT}"',
        f'[image]\nbuild-args = {{ BASE_IMAGE = "{BASE}" }}',
        '[defaults]\nnetwork = "none"\ntimeout = "5m"\njunit = "/tmp/junit.xml"',
        (
            f'[[shard]]\nname = "tests-{{index}}"\ncount = {SLOTS}\n'
            f'split = ["suite/**/test_*.py"]\ncommand = "{PYTEST} {{files}}"'
        ),
    ]
    for i, dirs in enumerate(BY_DIRECTORY, 1):
        paths = " ".join(f"suite/{d}" for d in dirs)
        lines.append(f'[[shard]]\nname = "bydir-{i}"\ncommand = "{PYTEST} {paths}"')
    for i, group in enumerate(file_lpt, 1):
        lines.append(f'[[shard]]\nname = "filelpt-{i}"\ncommand = "{PYTEST} {" ".join(group)}"')
    return "\n".join(lines) + "\n"


def write_setup_suite(root: Path) -> None:
    # rootdir /src for every group, so JUnit's classnames are suite.api.test_auth
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "suite").mkdir()
    (root / "suite" / "__init__.py").write_text("")
    for d in SETUP_DIRS:
        (root / "suite" / d).mkdir()
        (root / "suite" / d / "__init__.py").write_text("")
        (root / "suite" / d / "conftest.py").write_text(
            "import time\n\n"
            "# The directory's shared setup: paid once by each pytest process that collects it.\n"
            f"time.sleep({CONFTEST_SLEEP})\n"
        )
    for name, seconds in SETUP_SECONDS.items():
        (root / name).write_text(f"import time\n\n\ndef test_it():\n    time.sleep({seconds})\n")


def dirs_of(files: list[str]) -> list[str]:
    return sorted({f.split("/")[1] for f in files})


def with_setup(files: list[str]) -> float:
    """A group's seconds of sleep: its files' and one conftest per directory it touches."""
    return sum(SETUP_SECONDS[f] for f in files) + CONFTEST_SLEEP * len(dirs_of(files))


def setup_bound() -> float:
    longest = max(SETUP_SECONDS.values()) + CONFTEST_SLEEP
    return max(longest, (sum(SETUP_SECONDS.values()) + len(SETUP_DIRS) * CONFTEST_SLEEP) / SLOTS)


def by_directory_groups() -> list[list[str]]:
    return [[f for f in SETUP_FILES if f.split("/")[1] in dirs] for dirs in BY_DIRECTORY]


class SetupBench(Bench):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.spans = {"affinity": [], "bydir": [], "filelpt": []}
        # Each shard's finished - started beyond its sleeps and its conftests' sleeps.
        self.extra: dict[str, list[float]] = {v: [] for v in self.spans}
        self.groups: dict[str, list[list[str]]] = {}  # each variant's groups, last run
        self.affinity_runs: list[list[list[str]]] = []  # the groups of every affinity run
        self.file_lpt: list[list[str]] = []

    def variant(self, variant: str, pattern: str, files: dict[str, list[str]] | None) -> float:
        """`files`: each shard's files; None: the split's own, from report.json."""
        wall, report = self.shardrun(variant, pattern)
        groups = []
        for shard in sorted(report["shards"], key=lambda s: s["name"]):
            mine = shard["options"]["files"] if files is None else files[shard["name"]]
            cases = len(shard.get("test_cases") or [])
            if cases != len(mine):
                sys.exit(f"{variant}: {shard['name']} ran {cases} tests, not {len(mine)}")
            self.extra[variant].append(shard["finished"] - shard["started"] - with_setup(mine))
            groups.append(sorted(mine))
        self.groups[variant] = groups
        return wall

    def affinity(self) -> float:
        wall = self.variant("affinity", "tests-*", None)
        self.affinity_runs.append(self.groups["affinity"])
        return wall

    def bydir(self) -> float:
        groups = by_directory_groups()
        return self.variant("bydir", "bydir-*", {f"bydir-{i}": g for i, g in enumerate(groups, 1)})

    def filelpt(self) -> float:
        named = {f"filelpt-{i}": g for i, g in enumerate(self.file_lpt, 1)}
        return self.variant("filelpt", "filelpt-*", named)

    def setup(self) -> dict[str, float]:
        path = self.root / ".shardrun" / "timings.json"
        return json.loads(path.read_text()).get("setup", {}) if path.exists() else {}

    def listing(self) -> str:
        argv = [sys.executable, "-m", "shardrun", "list", "--shard", "tests-*"]
        done = subprocess.run(
            argv, cwd=self.root, env=self.env, capture_output=True, text=True, check=False
        )
        return (done.stdout + done.stderr).rstrip()


def main_setup(runs: int) -> None:
    root = project(setup_toml([]), SETUP_DOCKERFILE)
    write_setup_suite(root)
    bench = SetupBench(root)
    try:
        print(f"{load_note()} at the start")
        sizes = ", ".join(f"{d} {len(fs)}/{sum(fs.values()):.1f}s" for d, fs in SETUP_DIRS.items())
        print(
            f"{len(SETUP_FILES)} test files in {len(SETUP_DIRS)} directories (files/sleep: "
            f"{sizes}) sleeping {sum(SETUP_SECONDS.values()):.1f}s in all (0.2-3.0s each), "
            f"each directory's conftest.py {CONFTEST_SLEEP:g}s on import; {SLOTS} groups on "
            f"{SLOTS} slots of the local engine (--jobs {SLOTS})"
        )
        # The recording run: no file times yet. Also the warm-up (build, save).
        record_wall = bench.affinity()
        record_span = bench.spans["affinity"].pop()
        record_groups = bench.affinity_runs.pop()
        record_extra = bench.extra["affinity"]
        bench.extra["affinity"] = []
        learned = bench.known()
        if set(learned) != set(SETUP_FILES):
            sys.exit(
                f"timings.json has times for {len(learned)} of {len(SETUP_FILES)} files "
                "after the recording run"
            )
        after_record = dict(learned), bench.setup()
        # Today's file-level longest-first split, from the same recorded times.
        bench.file_lpt = split.groups(SETUP_FILES, SLOTS, learned)
        (root / "shards.toml").write_text(setup_toml(bench.file_lpt))

        samples = interleaved(
            runs, affinity=bench.affinity, bydir=bench.bydir, filelpt=bench.filelpt
        )
        print(f"{load_note()} at the end")
        print_setup_results(
            bench,
            samples,
            runs,
            (record_wall, record_span, record_groups, record_extra),
            after_record,
        )
    finally:
        cleanup(SETUP_PROJECT, root, [LOCAL])


def print_setup_results(
    bench: SetupBench,
    samples: dict[str, list[float]],
    runs: int,
    record: tuple[float, float, list[list[str]], list[float]],
    after_record: tuple[dict[str, float], dict[str, float]],
) -> None:
    med = statistics.median
    bound = setup_bound()
    extra = med(bench.extra["affinity"])

    def ideal(groups: list[list[str]]) -> str:
        loads = [with_setup(g) for g in groups]
        return f"{max(loads):6.2f}s  (groups: {fmt(loads)})"

    print(f"\n{runs} interleaved runs each; medians, spread = max - min:")
    print(f"  {'lower bound max(longest + setup, (sleeps + 6 setups) / 4)':<58} {bound:6.2f}s")
    print("  largest group's sleeps + setups (no other cost):")
    print(f"    {'affinity (last run)':<54} {ideal(bench.groups['affinity'])}")
    print(f"    {'bydir':<54} {ideal(bench.groups['bydir'])}")
    print(f"    {'filelpt':<54} {ideal(bench.groups['filelpt'])}")
    for variant in ("affinity", "bydir", "filelpt"):
        print(line(f"{variant}: shardrun makespan (report.json)", bench.spans[variant], bound))
        print(line(f"{variant}: shardrun wall (whole CLI)", samples[variant], bound))
    print("  each shard's time beyond its sleeps and setups (container, interpreter, pytest):")
    for variant, values in bench.extra.items():
        print(
            f"    {variant:<10} median {med(values):.2f}s (min {min(values):.2f}, "
            f"max {max(values):.2f}, {len(values)} shards)"
        )
    record_wall, record_span, record_groups, record_extra = record
    print(
        f"  recording run (no file times yet): makespan {record_span:.2f}s, wall "
        f"{record_wall:.2f}s; {ideal(record_groups).strip()}; its shards' time beyond "
        f"sleeps and setups median {med(record_extra):.2f}s"
    )

    span, wall = med(bench.spans["affinity"]), med(samples["affinity"])
    dir_span, dir_wall = med(bench.spans["bydir"]), med(samples["bydir"])
    lpt_span, lpt_wall = med(bench.spans["filelpt"]), med(samples["filelpt"])
    print(
        f"\n(a) affinity / bydir, wall/wall: {wall / dir_wall:.3f} (target <= 0.97): "
        f"{'met' if wall <= 0.97 * dir_wall else 'MISSED'}; makespan/makespan "
        f"{span / dir_span:.3f}"
    )
    print(
        f"(b) affinity / filelpt, wall/wall: {wall / lpt_wall:.3f} (target <= 0.92): "
        f"{'met' if wall <= 0.92 * lpt_wall else 'MISSED'}; makespan/makespan "
        f"{span / lpt_span:.3f}"
    )
    print(
        f"(c) affinity makespan {span:.2f}s = {span / bound:.3f}x the lower bound "
        f"{bound:.2f}s (target <= 1.10): {'met' if span <= 1.10 * bound else 'MISSED'}"
    )
    print(
        f"    affinity wall {wall:.2f}s = {wall / bound:.3f}x the lower bound; the makespan "
        f"beside the bound plus a shard's median time beyond its sleeps ({extra:.2f}s): "
        f"{span / (bound + extra):.3f}x"
    )

    print_setup_learned(bench, after_record)
    print(
        "\ngroups of each variant in the last run (sleep = its files' sleeps, +setup = "
        f"{CONFTEST_SLEEP:g}s per directory it touches):"
    )
    for variant, groups in bench.groups.items():
        for i, group in enumerate(groups, 1):
            shown = affinity.describe(group, affinity.sizes(SETUP_FILES))
            print(
                f"  {variant}-{i}: {len(group):2d} files, sleep "
                f"{sum(SETUP_SECONDS[f] for f in group):5.1f}s +setup "
                f"{with_setup(group):5.1f}s: {shown}"
            )
    changed = sum(1 for a, b in pairwise(bench.affinity_runs) if a != b)
    print(
        f"  the affinity groups changed {changed} time(s) over the {len(bench.affinity_runs)} "
        "measured runs; largest group's sleeps + setups per run: "
        + fmt([max(with_setup(g) for g in run) for run in bench.affinity_runs])
    )
    print("\nshardrun list --shard 'tests-*' after the last run:")
    print("\n".join(f"  {text}" for text in bench.listing().splitlines()))


def print_setup_learned(bench: SetupBench, after_record: tuple[dict, dict]) -> None:
    def setup_line(label: str, setup: dict[str, float]) -> str:
        return (
            f"  {label}: base {setup.get('base', 0.0):.2f}s a group, per_dir "
            f"{setup.get('per_dir', 0.0):.2f}s a directory"
        )

    def files_line(label: str, known: dict[str, float]) -> str:
        diff = [known[f] - SETUP_SECONDS[f] for f in SETUP_FILES]
        return (
            f"  {label}: {sum(known.values()):.1f}s for {sum(SETUP_SECONDS.values()):.1f}s "
            f"of sleeps; learned - real per file median {statistics.median(diff):+.2f}s "
            f"(min {min(diff):+.2f}, max {max(diff):+.2f})"
        )

    print(
        f"\nlearned setup in timings.json (real: {CONFTEST_SLEEP:g}s a directory, the "
        "conftest; a group's base is its container and pytest start-up):"
    )
    print(setup_line("after the recording run", after_record[1]))
    print(setup_line("after the last run", bench.setup()))
    print("per-file times in timings.json:")
    print(files_line("after the recording run", after_record[0]))
    print(files_line("after the last run", bench.known()))


if __name__ == "__main__":
    main()
