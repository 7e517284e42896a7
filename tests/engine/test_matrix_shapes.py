"""Every matrix shape merges: the origin workflow's 10 shards on 11 partition jobs, one of
which the plan leaves empty, run as CI runs them (a build job, each partition job in a
fresh copy of the project with only the image file and its plan, a merge job of the
downloaded run folders), ends in one verdict with the failing shard named."""

from __future__ import annotations

import json
import shutil
import time

from tests.engine.conftest import shards_toml
from tests.engine.test_image_file import _job_copy, _shardrun

JOBS = 11
SHARDS = """
[defaults]
network = "none"
[[shard]]
name = "s-{index}"
count = 9
command = ["true"]
[[shard]]
name = "bad"
command = ["false"]
"""


def test_ten_shards_on_eleven_jobs_merge_with_the_failing_shard_named(project):
    project.write("shards.toml", shards_toml(project, SHARDS))
    image = project.root.parent / "image.tar.zst"
    built = project.shardrun("build", "--plain", "--output", str(image), "--partitions", str(JOBS))
    assert built.returncode == 0, built.stdout + built.stderr

    merge_dir = _job_copy(project, "merge")
    empty: list[int] = []
    for k in range(1, JOBS + 1):
        job = _job_copy(project, f"job{k}")
        started = time.monotonic()
        done = _shardrun(
            project, job, "run", "--plain", "--image", str(image), "--partition", f"{k}/{JOBS}"
        )
        seconds = time.monotonic() - started
        assert done.returncode in (0, 1), done.stdout + done.stderr  # "bad" fails its test
        run = (job / ".shardrun" / "runs" / "latest").resolve()
        report = json.loads((run / "report.json").read_text())
        assert report["partition"]["index"] == k
        if not report["shards"]:
            empty.append(k)
            assert done.returncode == 0 and "nothing to run" in done.stdout
            assert " loaded " not in done.stdout and seconds < 10, done.stdout
        shutil.copytree(run, merge_dir / "downloads" / f"job{k}")
    assert len(empty) == 1  # ten shards, eleven jobs

    merged = _shardrun(project, merge_dir, "merge", "--plain", "downloads")

    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert "never reported" not in merged.stderr
    assert "10 shards: 9 pass, 1 fail" in merged.stdout
    assert [line.split()[1] for line in merged.stdout.splitlines() if " FAIL " in line] == ["bad"]
    report = json.loads((merge_dir / ".shardrun" / "runs" / "latest" / "report.json").read_text())
    assert report["exit_code"] == 1
    assert sorted(s["name"] for s in report["shards"]) == sorted(
        ["bad", *(f"s-{i}" for i in range(1, 10))]
    )
    parts = {p["index"]: p for p in report["partitions"]}
    assert sorted(parts) == list(range(1, JOBS + 1))
    [k] = empty
    assert (parts[k]["exit_code"], parts[k]["workers"]) == (0, [])
