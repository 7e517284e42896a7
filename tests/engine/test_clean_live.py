"""`shardrun clean` proves that what it removes is dead: a live run's containers and
folder and a live repro's container stay, and the content tags no remaining run names go."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.engine.conftest import LABEL_PROJECT, shards_toml, wait_for_running

LONG = """
[[shard]]
name = "long"
network = "none"
command = ["sh", "-c", "sleep 30"]
"""


def test_clean_leaves_a_live_runs_containers_and_folder(project, docker_client):
    project.write("shards.toml", shards_toml(project, LONG))
    run = project.popen("run", "--plain")
    try:
        [container] = wait_for_running(docker_client, project)
        folders = list((project.root / ".shardrun" / "runs").glob("2*"))
        assert len(folders) == 1 and (folders[0] / "owner.json").is_file()

        cleaned = project.shardrun("clean", "--containers", "--older-than", "1ms")

        assert cleaned.returncode == 0, cleaned.stderr
        assert "removed 0 runs" in cleaned.stdout
        assert "their run is live" in cleaned.stdout
        container.reload()
        assert container.status == "running"
        assert folders[0].is_dir()
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=60)
    # Its runner gone, the same command removes what it left (here: its folder).
    assert not (folders[0] / "owner.json").exists()
    again = project.shardrun("clean", "--older-than", "1ms")
    assert again.returncode == 0
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"{LABEL_PROJECT}={project.name}"}
        )
        == []
    )


def test_clean_leaves_a_live_repros_container_unless_forced(project, docker_client):
    project.write("shards.toml", shards_toml(project, LONG))
    repro = subprocess.Popen(
        [sys.executable, "-m", "shardrun", "repro", "long"],
        cwd=project.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        [container] = wait_for_running(docker_client, project)
        cleaned = project.shardrun("clean", "--containers")
        assert cleaned.returncode == 0, cleaned.stderr
        container.reload()
        assert container.status == "running"

        forced = project.shardrun("clean", "--containers", "--force")
        assert forced.returncode == 0, forced.stderr
        deadline = time.monotonic() + 30
        while docker_client.containers.list(filters={"id": container.id}):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        repro.send_signal(signal.SIGINT)
        repro.communicate(timeout=60)


def test_clean_removes_content_tags_that_no_remaining_run_names(project, docker_client):
    project.write("shards.toml", shards_toml(project, '[[shard]]\nname = "a"\ncommand = "true"\n'))
    first = project.shardrun("run", "--plain")
    assert first.returncode == 0, first.stderr
    old_id = project.report()["image_id"]
    project.write("payload.txt", "changed\n")  # a new image
    second = project.shardrun("run", "--plain")
    assert second.returncode == 0, second.stderr
    new_id = project.report()["image_id"]
    assert new_id != old_id
    tag = "shardrun/image:" + old_id.removeprefix("sha256:")
    docker_client.api.tag(old_id, "shardrun/image", old_id.removeprefix("sha256:"))
    assert docker_client.images.list(name=tag)

    # Both runs remain: both tags stay.
    kept = project.shardrun("clean")
    assert kept.returncode == 0, kept.stderr
    assert "0 unused image tags" in kept.stdout
    # The first run's folder goes (the latest stays), and with it the use of its image.
    cleaned = project.shardrun("clean", "--older-than", "1ms")
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed 1 run " in cleaned.stdout and "1 unused image tag " in cleaned.stdout
    assert docker_client.images.list(name=tag) == []
