"""`split` keeps what shares setup together, end to end: a pytest suite of four
directories whose conftest.py each costs a second to import (what a directory's shared
fixtures and heavy imports cost), split into two groups in containers of the Debian +
Python base. Every file runs exactly once, and the groups touch each directory once, so
the run beats a split that scatters the directories over both groups."""

from __future__ import annotations

import json
from pathlib import Path

from tests.engine.conftest import shards_toml
from tests.engine.test_split import DOCKERFILE, cases_by_file

DIRS = ("alpha", "beta", "gamma", "delta")
FILES = [f"suite/{d}/test_{n}.py" for d in DIRS for n in range(3)]
SPLIT = """
[defaults]
network = "none"
[[shard]]
name = "tests-{index}"
count = 2
split = ["suite/**/test_*.py"]
junit = "/tmp/junit.xml"
command = "python3 -m pytest -q -p no:cacheprovider --junitxml=/tmp/junit.xml {files}"
"""


def scattered() -> str:
    """The same two groups' worth of files, dealt out one by one: each group gets a file
    of every directory, as a split by file alone would."""
    out = '[defaults]\nnetwork = "none"\n'
    for k in (0, 1):
        files = " ".join(FILES[k::2])
        out += (
            f'[[shard]]\nname = "by-file-{k + 1}"\njunit = "/tmp/junit.xml"\ncommand = '
            f'"python3 -m pytest -q -p no:cacheprovider --junitxml=/tmp/junit.xml {files}"\n'
        )
    return out


def makespan(report: dict) -> float:
    shards = report["shards"]
    return max(s["finished"] for s in shards) - min(s["started"] for s in shards)


def test_a_split_keeps_each_directory_in_one_group_and_beats_scattering(project, python_base):
    project.write("Dockerfile.test", DOCKERFILE)
    project.write("suite/__init__.py", "")
    for d in DIRS:  # packages: test_0.py is in every directory
        project.write(f"suite/{d}/__init__.py", "")
        project.write(f"suite/{d}/conftest.py", "import time\n\ntime.sleep(1.0)\n")
    for name in FILES:
        project.write(name, "import time\n\ndef test_it():\n    time.sleep(0.1)\n")

    project.write("shards.toml", shards_toml(project, SPLIT, base=python_base))
    spans = {}
    for attempt in ("first", "learned"):
        done = project.shardrun("run", "--plain", "--jobs", "2", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        report = project.report()
        groups = [s["options"]["files"] for s in report["shards"]]
        assert sorted(f for g in groups for f in g) == sorted(FILES)  # each file once
        run_dir = Path(report["shards"][0]["log"]).parent
        ran = cases_by_file(run_dir, [s["name"] for s in report["shards"]])
        assert sorted(ran) == sorted(f.removesuffix(".py").replace("/", ".") for f in FILES)
        # Two directories a group, whole: each conftest.py is imported once in all.
        assert sorted(len({f.split("/")[1] for f in g}) for g in groups) == [2, 2]
        spans[attempt] = makespan(report)
    timings = json.loads((project.root / ".shardrun" / "timings.json").read_text())
    assert timings["setup"]["base"] + 2 * timings["setup"]["per_dir"] >= 1.5  # 2 s learned

    project.write("shards.toml", shards_toml(project, scattered(), base=python_base))
    done = project.shardrun("run", "--plain", "--jobs", "2", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    by_file = makespan(project.report())
    # Each scattered group imports all four conftest.py files: 4 s against 2 s.
    assert spans["learned"] + 1.0 < by_file, (spans, by_file)
