"""`shardrun build`, the real command end to end on fake engines: the image file and the
plan of a CI matrix, and the partition jobs that run them."""

from __future__ import annotations

import json

from tests.fakes.engine import FakeImage
from tests.host.cli.conftest import IMAGE, PROJECT, shardrun, write_project


def test_build_output_writes_the_file_and_plan_and_each_job_runs_its_share(docker, tmp_path):
    docker.add("local", builds=True)
    project = write_project(tmp_path, ["a", "b", "c"])
    image = tmp_path / "out" / "image.tar"

    done = shardrun("build", "--plain", "--output", str(image), "--partitions", "2")

    assert done.exit_code == 0, done.output
    plan = tmp_path / "out" / "image.plan.json"
    assert done.stdout.splitlines()[-3:] == [IMAGE.id, str(image), str(plan)]  # after the view
    assert "3 shards over 2 partitions" in done.stderr
    ran, runs = [], []
    for k in (1, 2):
        # Each job on a machine of its own: its engine has never seen the image.
        job = docker.add("local")
        done = shardrun("run", "--plain", "--image", str(image), "--partition", f"{k}/2")
        assert done.exit_code == 0, done.output
        assert job.called("build") == [] and job.has_image(IMAGE.id)  # loaded from the file
        report = json.loads((project.latest() / "report.json").read_text())
        assert (report["partition"]["index"], report["partition"]["total"]) == (k, 2)
        ran += job.started_shards()
        runs.append(str(project.latest()))
    assert sorted(ran) == ["a", "b", "c"]  # each shard in one partition

    done = shardrun("merge", "--output", str(tmp_path / "merged"), *runs)

    assert done.exit_code == 0, done.output
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert sorted(s["name"] for s in merged["shards"]) == ["a", "b", "c"]
    assert "merged 2 partitions" in done.stderr


def test_an_image_file_of_another_build_than_the_plans_is_refused(docker, tmp_path):
    builder = docker.add("local", builds=True)
    write_project(tmp_path, ["a", "b"])
    planned = tmp_path / "image.tar"
    assert shardrun("build", "--output", str(planned), "--partitions", "2").exit_code == 0
    builder.built = FakeImage.make(b"other", labels={"shardrun.project": PROJECT})
    other = tmp_path / "other.tar"
    assert shardrun("build", "--output", str(other)).exit_code == 0

    done = shardrun(
        "run",
        "--plain",
        "--image",
        str(other),
        "--plan",
        str(tmp_path / "image.plan.json"),
        "--partition",
        "1/2",
    )

    assert done.exit_code == 2
    assert f"{other} is image" in done.stderr and "the plan was made for image" in done.stderr
    assert [c for c in builder.history] == []  # refused before any shard


def test_partitions_without_output_is_a_usage_error_before_any_engine(docker, tmp_path):
    write_project(tmp_path, ["a"])

    done = shardrun("build", "--partitions", "2")

    assert done.exit_code == 2 and "--partitions needs --output FILE" in done.stderr
