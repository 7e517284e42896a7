"""`split` end to end: a pytest suite of 30 files with uneven times, split into groups run
in containers of the Debian + Python base (the `python_base` fixture finds or makes it).
Every file runs exactly once, and once times are learned the groups are better balanced."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.engine.conftest import shards_toml

DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY suite/ /src/suite/
WORKDIR /src
"""
SHARDS = """
[defaults]
network = "none"
[[shard]]
name = "tests-{index}"
count = 3
split = ["suite/**/test_*.py"]
junit = "/tmp/junit.xml"
command = "python3 -m pytest -q -p no:cacheprovider --junitxml=/tmp/junit.xml {files}"
"""
NAMES = sorted(f"suite/{'deep/' if n % 5 == 0 else ''}test_{n:02d}.py" for n in range(30))
LONG = set(NAMES[0:9:3])  # every third by name: with no times, two share a group


def cases_by_file(run_dir: Path, shards: list[str]) -> list[str]:
    files = []
    for shard in shards:
        root = ET.parse(run_dir / shard / "junit.xml").getroot()
        files += [c.get("classname") for c in root.iter("testcase")]
    return files


def test_a_split_runs_every_file_once_and_balances_better_once_it_knows_the_times(
    project, python_base
):
    project.write("Dockerfile.test", DOCKERFILE)
    for name in NAMES:
        seconds = 2.0 if name in LONG else 0.05
        project.write(name, f"import time\n\ndef test_it():\n    time.sleep({seconds})\n")
    project.write("shards.toml", shards_toml(project, SHARDS, base=python_base))

    spans, longs = [], []
    for _ in range(2):
        result = project.shardrun("run", "--plain", timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        report = project.report()
        shards = [s["name"] for s in report["shards"]]
        run_dir = Path(report["shards"][0]["log"]).parent
        ran = cases_by_file(run_dir, shards)
        assert len(ran) == 30 and len(set(ran)) == 30  # each file exactly once
        files = [f for s in report["shards"] for f in s["options"]["files"]]
        assert sorted(files) == sorted(set(files)) and len(files) == 30
        longest = max(
            sum(2.0 if f in LONG else 0.05 for f in s["options"]["files"]) for s in report["shards"]
        )
        spans.append(longest)
        longs.append(sorted(len(LONG & set(s["options"]["files"])) for s in report["shards"]))

    assert spans[0] >= 4.0  # with no times every file counts alike: long ones share a group
    # By the learned times: one long file each. (How the short ones fall depends on their
    # measured times and the learned setup, which a loaded machine moves by a file or two.)
    assert spans[1] < spans[0] and longs[1] == [1, 1, 1]
    listed = subprocess.run(
        ["python3", "-m", "shardrun", "list"],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "split: 30 files in 3 groups, expected makespan" in listed

    # repro runs the files the shard had in the run, not a fresh split.
    [last] = [s for s in project.report()["shards"] if s["name"] == "tests-1"]
    line = project.shardrun("repro", "tests-1", "--print").stdout
    assert line.endswith(" ".join(last["options"]["files"]) + "\n")


def small_split(project, files: int, count: str, command: str) -> None:
    """`files` empty test files split into groups g-1, g-2, ... by `count`."""
    for n in range(files):
        project.write(f"suite/test_{n}.py", "")
    project.write(
        "shards.toml",
        shards_toml(
            project,
            f"""
[defaults]
network = "none"
[[shard]]
name = "g-{{index}}"
count = {count}
split = ["suite/test_*.py"]
command = {command}
""",
        ),
    )


def test_count_slots_makes_a_group_per_slot_of_the_run(project):
    small_split(project, 5, '"slots"', '["echo", "{files}"]')
    three = project.shardrun("run", "--plain", "--worker", "default*3")
    assert three.returncode == 0, three.stdout + three.stderr
    assert sorted(project.statuses()) == ["g-1", "g-2", "g-3"]
    one = project.shardrun("run", "--plain", "--worker", "default*3", "--jobs", "1")
    assert one.returncode == 0, one.stdout + one.stderr
    [only] = project.report()["shards"]
    assert len(only["options"]["files"]) == 5


def test_failed_reruns_a_split_shard_with_the_files_it_had(project):
    small_split(project, 6, "2", '["sh", "-c", "echo {files}; exit 1"]')
    first = project.shardrun("run", "--plain")
    assert first.returncode == 1
    had = {s["name"]: s["options"]["files"] for s in project.report()["shards"]}
    # New times would regroup the files: a rerun of what failed must not.
    timings = project.root / ".shardrun" / "timings.json"
    times = {f"suite/test_{n}.py": 50.0 if n in (0, 2) else 1.0 for n in range(6)}
    timings.write_text(json.dumps({"files": times}))
    listed = subprocess.run(
        ["python3", "-m", "shardrun", "list"],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "g-1  ~52.0s  suite/ (3 of 6)  suite/test_0.py suite/test_1.py suite/test_3.py" in listed
    assert had["g-1"] == ["suite/test_0.py", "suite/test_1.py", "suite/test_2.py"]

    again = project.shardrun("run", "--plain", "--failed")

    assert again.returncode == 1
    assert {s["name"]: s["options"]["files"] for s in project.report()["shards"]} == had


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])  # with a file attribute, without
def test_file_times_are_learned_from_the_junit_pytest_writes_in_the_container(
    project, python_base, family
):
    project.write("Dockerfile.test", DOCKERFILE)
    sleeps = {"suite/test_long.py": 1.5, "suite/test_a.py": 0.05, "suite/test_b.py": 0.05}
    for name, seconds in sleeps.items():
        project.write(name, f"import time\n\ndef test_it():\n    time.sleep({seconds})\n")
    project.write(
        "shards.toml",
        shards_toml(
            project,
            SHARDS.replace("count = 3", "count = 1").replace(
                "--junitxml", f"-o junit_family={family} --junitxml"
            ),
            base=python_base,
        ),
    )

    result = project.shardrun("run", "--plain", timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    learned = json.loads((project.root / ".shardrun" / "timings.json").read_text())["files"]
    assert set(learned) == set(sleeps)
    # From the test cases, not the shard's duration shared out evenly (equal estimates).
    assert learned["suite/test_long.py"] >= 1.5
    assert learned["suite/test_long.py"] > 5 * learned["suite/test_a.py"]
