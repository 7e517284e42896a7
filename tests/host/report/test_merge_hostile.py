"""`shardrun merge` of partition folders an attacker made (CI artifacts from other
machines), through the real CLI: no byte of a host file outside them reaches any output,
nothing is followed or copied but regular files, outputs never land in inputs, and a
huge JUnit file costs seconds and megabytes, not minutes and gigabytes. No engine."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from shardrun.report import json_report
from tests.host.report.partitions import MACHINE, junit_text, matrix, run_id, shardrun


def _every_file(root: Path) -> list[Path]:
    return [Path(d, f) for d, _, files in os.walk(root) for f in files]


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def _rewrite(folder: Path, change) -> None:
    report = _report(folder)
    change(report)
    (folder / "report.json").write_text(json.dumps(report))


@pytest.fixture
def planted(tmp_path):
    """A secret file outside every partition folder: a JUnit file whose test name and
    failure are a random token, and a line of it alone (so a log tail shows it too)."""
    token = secrets.token_hex(16)
    secret_dir = tmp_path / "host"
    secret_dir.mkdir()
    secret = secret_dir / "secret.xml"
    secret.write_text(junit_text(f"test_{token}", failed=True).replace("boom", token) + token)
    return token, secret


def test_no_byte_of_a_file_outside_the_partitions_reaches_any_output(tmp_path, planted):
    token, secret = planted
    downloads = matrix(tmp_path, shards=6, jobs=2, failing=("s1", "s3", "s5"))
    part = downloads / "job1" / run_id(1)
    there = f"{MACHINE}/{run_id(1)}"
    up = "../" * (len(part.parts) + 2)

    # Files of the folder that are links: to the secret, to its folder, to /dev/zero.
    (part / "s1.log").unlink()
    (part / "s1.log").symlink_to(secret)  # s1's log, where the run writes it
    (part / "s3" / "junit.xml").unlink()
    (part / "s3" / "junit.xml").symlink_to(secret)  # s3's JUnit file
    (part / "hostdir").symlink_to(secret.parent, target_is_directory=True)
    (part / "s5" / "artifacts" / "etc").symlink_to("/etc", target_is_directory=True)
    (part / "s5" / "artifacts" / "zero").symlink_to("/dev/zero")
    os.mkfifo(part / "s5" / "artifacts" / "fifo")
    os.link(secret, part / "s5" / "artifacts" / "hard")

    def hostile(report: dict) -> None:
        _, s3, s5 = report["shards"]
        s3["log"] = str(secret)  # absolute
        s5["log"] = f"{there}/{up}{secret.relative_to('/')}"  # up and out with ..
        s5["junit"] = f"{there}/hostdir/{secret.name}"  # through a link to a folder
        s5["artifacts"] = [
            f"{there}/s5/artifacts/{name}" for name in ("etc/passwd", "zero", "fifo", "hard")
        ] + [str(secret), f"{there}/s5/artifacts/../../hostdir/{secret.name}"]

    _rewrite(part, hostile)
    out = tmp_path / "merged"
    started = time.monotonic()
    done = shardrun(
        tmp_path,
        "merge",
        "--plain",
        "--output",
        str(out),
        str(downloads),
        env={"GITHUB_ACTIONS": "true"},  # log tails and failures as annotations on stdout
    )
    seconds = time.monotonic() - started

    assert done.returncode == 1, done.stdout + done.stderr  # three shards failed
    assert seconds < 20
    assert token not in done.stdout + done.stderr
    written = _every_file(out) + _every_file(tmp_path / ".shardrun")
    assert len(written) > 10
    for path in written:
        assert token.encode() not in path.read_bytes(), path
    # What was left out is said, a line a partition, and nothing else was copied.
    notes = [line for line in done.stderr.splitlines() if "partition 1 " in line]
    assert len(notes) == 2, done.stderr
    assert "not read, outside its folder or a link: " in notes[0]
    assert notes[1].endswith(
        "not copied: 1 FIFO, 1 hard link, 5 symbolic links (only regular files are)"
    )
    copied = {
        p.relative_to(out / "partition-1").as_posix() for p in _every_file(out / "partition-1")
    }
    assert not any(name.startswith(("hostdir", "s5/artifacts/etc")) for name in copied)
    assert {"s3.log", "s5.log", "report.json"} <= copied and "s1.log" not in copied
    merged = _report(out)
    jsonschema.validate(
        merged, json.loads((Path(json_report.__file__).parent / "schema.json").read_text())
    )
    by_name = {s["name"]: s for s in merged["shards"]}
    assert (by_name["s1"]["log"], by_name["s3"]["junit"]) == (None, None)
    assert by_name["s3"]["log"] is None and by_name["s5"]["artifacts"] == []
    assert by_name["s2"]["log"] == str(out / "partition-2" / "s2.log")  # a legit one stays
    assert by_name["s2"]["test_cases"][0]["name"] == "test_s2"


def test_a_link_to_etc_in_a_partition_copies_nothing_of_it(tmp_path):
    downloads = matrix(tmp_path, shards=2, jobs=1)
    part = downloads / "job1" / run_id(1)
    (part / "etc").symlink_to("/etc", target_is_directory=True)
    (part / "s1" / "shadow").symlink_to("/etc/shadow")

    done = shardrun(tmp_path, "merge", "--plain", "--output", "out", str(downloads))

    assert done.returncode == 0, done.stderr
    copied = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in _every_file(tmp_path / "out")
    )
    assert not any("etc" in name or "shadow" in name for name in copied), copied
    assert len(copied) == 4 + 7  # the merged reports; the report, 2 logs, JUnit files, artifacts
    assert "not copied: 2 symbolic links (only regular files are)" in done.stderr


def test_a_report_json_that_is_a_link_to_a_run_elsewhere_is_refused(tmp_path, planted):
    token, _ = planted
    elsewhere = matrix(tmp_path / "elsewhere", shards=1, jobs=1)
    (elsewhere / "job1" / run_id(1) / "s1.log").write_text(token)
    downloads = tmp_path / "downloads" / "job1" / "run"
    downloads.mkdir(parents=True)
    (downloads / "report.json").symlink_to(elsewhere / "job1" / run_id(1) / "report.json")

    done = shardrun(tmp_path, "merge", "--plain", "--output", "out", "downloads")

    assert done.returncode == 4
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert "report.json cannot be read: " in done.stderr and "lies outside" in done.stderr
    assert not (tmp_path / "out").exists() and token not in done.stdout + done.stderr


@pytest.mark.parametrize("where", ["partition", "parent"])
def test_an_output_inside_an_input_or_around_it_is_exit_2(tmp_path, where):
    downloads = matrix(tmp_path, shards=2, jobs=2)
    part = downloads / "job1" / run_id(1)
    output = part / "merged" if where == "partition" else downloads
    before = sorted(map(str, _every_file(downloads)))

    done = shardrun(tmp_path, "merge", "--plain", "--output", str(output), str(downloads))

    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.count("\n") == 1 and "write the merged run apart from its inputs" in done.stderr
    )
    assert sorted(map(str, _every_file(downloads))) == before


def test_the_default_run_folder_in_a_partition_folder_is_exit_2(tmp_path):
    """`shardrun merge .` run inside a downloaded partition's folder."""
    downloads = matrix(tmp_path, shards=1, jobs=1)
    part = downloads / "job1" / run_id(1)

    done = shardrun(part, "merge", "--plain", ".")

    assert done.returncode == 2 and "(give --output DIR)" in done.stderr
    assert not (part / ".shardrun").exists()


def test_every_matrix_shape_merges_empty_partitions_too(tmp_path):
    """5 shards on 7 jobs: jobs 6 and 7 ran nothing, and say so in their reports."""
    downloads = matrix(tmp_path, shards=5, jobs=7, failing=("s4",))

    done = shardrun(tmp_path, "merge", "--plain", "downloads")

    assert done.returncode == 1, done.stderr
    assert "5 shards: 4 pass, 1 fail" in done.stdout
    merged = _report(next((tmp_path / ".shardrun" / "runs").glob("merged-*")))
    assert [p["index"] for p in merged["partitions"]] == list(range(1, 8))
    assert [s["name"] for s in merged["shards"] if s["status"] == "FAIL"] == ["s4"]

    for k in (6, 7):  # a job that truly never reported
        os.rename(downloads / f"job{k}", tmp_path / f"lost{k}")
    lost = shardrun(tmp_path, "merge", "--plain", "downloads")
    assert lost.returncode == 4
    assert lost.stderr.strip().endswith("")
    assert "partition 6, 7 of 7 never reported" in lost.stderr


def _peak(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    """The merge in a process of its own, its wall seconds and peak memory in MB."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "t = time.monotonic() - t\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(done.returncode, t, peak)\n"
        "sys.stderr.write(done.stdout + done.stderr)\n"
    )
    done = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-c", probe, sys.executable, "-m", "shardrun", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"},
    )
    code, seconds, peak = done.stdout.split()
    return (
        subprocess.CompletedProcess(args, int(code), "", done.stderr),
        float(seconds),
        float(peak),
    )


@pytest.mark.parametrize(
    "cases, note",
    [
        (1_250_000, "MB not read: over the 32 MB limit"),  # 100 MB: over the intake's limit
        (280_000, "test cases past the first 10000 not kept"),  # ~29 MB: read, cut as a run does
    ],
)
def test_a_huge_junit_file_costs_seconds_and_megabytes(tmp_path, cases, note):
    """Before: 113 MB took 30 s and 2.3 GB; 31 MB took 6.9 s and 673 MB."""
    downloads = matrix(tmp_path, shards=1, jobs=1, failing=("s1",))
    line = '<testcase classname="tests.test_mod.TestThing" name="test_%07d" time="0.001"/>\n'
    with open(downloads / "job1" / run_id(1) / "s1" / "junit.xml", "w") as out:
        out.write("<testsuites><testsuite>\n")
        out.writelines(line % i for i in range(cases))
        out.write("</testsuite></testsuites>\n")

    done, seconds, peak = _peak(["merge", "--plain", "--output", "out", "downloads"], tmp_path)

    print(f"{cases} cases: {seconds:.1f}s, {peak:.0f} MB")
    assert done.returncode == 1, done.stderr
    assert note in done.stderr
    assert seconds < 15 and peak < 400


@pytest.mark.parametrize(
    "junit, note",
    [
        ('<?xml version="1.0" encoding="bogus"?><testsuites/>', "not well-formed JUnit XML"),
        ("<testsuites>" * 100_000, "not well-formed JUnit XML"),
        ("", "not well-formed JUnit XML"),
        ("fifo", ""),
        ("folder", ""),
    ],
    ids=["unknown-encoding", "deep", "empty", "fifo", "folder"],
)
def test_an_odd_junit_file_is_not_read_and_the_merge_goes_on(tmp_path, junit, note):
    downloads = matrix(tmp_path, shards=1, jobs=1, failing=("s1",))
    path = downloads / "job1" / run_id(1) / "s1" / "junit.xml"
    path.unlink()
    if junit == "fifo":
        os.mkfifo(path)
    elif junit == "folder":
        path.mkdir()
    else:
        path.write_text(junit)

    done = shardrun(tmp_path, "merge", "--plain", "--output", "out", "downloads")

    assert done.returncode == 1, done.stderr
    assert note in done.stdout
    assert _report(tmp_path / "out")["shards"][0]["junit"] is None


def test_markup_in_a_partitions_texts_is_shown_as_text(tmp_path):
    """The terminal's table and worker lines are rich markup: a "[/]" from a report was
    a MarkupError (exit 70)."""
    downloads = matrix(tmp_path, shards=2, jobs=1)
    part = downloads / "job1" / run_id(1)

    def marked(report: dict) -> None:
        report["workers"] = [
            {"name": "[/]", "url": "u", "slots": 1},
            {"name": "[bold]b", "url": "u", "lost": "[/] gone", "required": False},
        ]
        report["shards"][0].update(worker="[/]", status="ERROR", detail="[/red] no log", log=None)

    _rewrite(part, marked)
    done = shardrun(tmp_path, "merge", "--plain", "--output", "out", "downloads")

    assert done.returncode == 4, done.stderr
    assert "worker 1:[/]: 1 slot," in done.stdout and "[/red] no log" in done.stdout
    assert "worker 1:[bold]b: LOST ([/] gone)" in done.stdout
