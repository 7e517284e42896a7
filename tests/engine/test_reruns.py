"""`run --failed` and `run --fail-fast` against a real engine: which containers the engine
started, from its own event stream, not only what shardrun printed."""

from __future__ import annotations

import time

from tests.engine.conftest import LABEL_PROJECT, shards_toml

FOUR = """
[defaults]
network = "none"
[[shard]]
name = "a"
command = ["true"]
[[shard]]
name = "b"
command = ["sh", "-c", "exit 1"]
[[shard]]
name = "c"
command = ["true"]
[[shard]]
name = "d"
timeout = "1s"
command = ["sleep", "30"]
"""


def started_by_engine(client, project, since: float) -> list[str]:
    """The shards whose containers the engine started since `since`, in order."""
    events = client.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "event": "start", "label": f"{LABEL_PROJECT}={project.name}"},
    )
    return [e["Actor"]["Attributes"]["shardrun.shard"] for e in events]


def test_failed_reruns_exactly_the_shards_that_failed_or_timed_out(project, docker_client):
    project.write("shards.toml", shards_toml(project, FOUR))
    first = project.shardrun("run", "--plain")
    assert first.returncode == 1, first.stdout + first.stderr
    assert project.statuses() == {"a": "PASS", "b": "FAIL", "c": "PASS", "d": "TIMEOUT"}
    first_id = project.report()["run_id"]

    time.sleep(1.1)  # the engine's event times are whole seconds
    since = time.time()
    again = project.shardrun("run", "--plain", "--failed")

    assert again.returncode == 1, again.stdout + again.stderr
    assert sorted(started_by_engine(docker_client, project, since)) == ["b", "d"]
    assert set(project.statuses()) == {"b", "d"}

    # Now b passes: --failed of the first run (by its ID) still names b and d, and a run
    # whose failures are fixed has nothing left to rerun.
    project.write(
        "shards.toml",
        shards_toml(
            project, FOUR.replace('"exit 1"', '"exit 0"').replace('["sleep", "30"]', '["true"]')
        ),
    )
    fixed = project.shardrun("run", "--plain", "--failed", "--run", first_id)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert project.statuses() == {"b": "PASS", "d": "PASS"}
    nothing = project.shardrun("run", "--plain", "--failed")
    assert nothing.returncode == 0
    assert "had no failed shards; nothing to run" in nothing.stdout


def test_fail_fast_starts_no_queued_shard_after_the_first_failure(project, docker_client):
    project.write("shards.toml", shards_toml(project, FOUR))
    since = time.time() - 1
    result = project.shardrun("run", "--plain", "--jobs", "1", "--fail-fast")

    assert result.returncode == 1, result.stdout + result.stderr
    assert started_by_engine(docker_client, project, since) == ["a", "b"]
    assert project.statuses() == {"a": "PASS", "b": "FAIL", "c": "SKIPPED", "d": "SKIPPED"}


def test_keep_failed_leaves_the_failed_container_until_clean_removes_it(project, docker_client):
    project.write("shards.toml", shards_toml(project, FOUR))
    label = {"label": f"{LABEL_PROJECT}={project.name}"}

    result = project.shardrun("run", "--plain", "--keep-failed")

    assert result.returncode == 1, result.stdout + result.stderr
    kept = docker_client.containers.list(all=True, filters=label)
    assert sorted(c.labels["shardrun.shard"] for c in kept) == ["b", "d"]
    assert all(c.status == "exited" and c.name.startswith("shardrun-kept-") for c in kept)
    report = {s["name"]: s["kept_container"] for s in project.report()["shards"]}
    assert report["a"] is None and report["b"] == next(
        c.name for c in kept if c.labels["shardrun.shard"] == "b"
    )
    assert (
        f"kept b: container {report['b']} on local; look inside with: docker --host "
        in result.stdout
    )
    assert f"commit {report['b']} shardrun-kept:b && " in result.stdout

    # Later commands' orphan sweeps leave them; `clean` leaves them while they are younger
    # than --older-than (the summary just named them), then removes them.
    again = project.shardrun("run", "--plain", "--shard", "a")
    assert again.returncode == 0
    assert len(docker_client.containers.list(all=True, filters=label)) == 2
    young = project.shardrun("clean")
    assert young.returncode == 0, young.stderr
    assert "local: removed 0 kept containers (2 left" in young.stdout
    cleaned = project.shardrun("clean", "--older-than", "1ms")
    assert cleaned.returncode == 0, cleaned.stderr
    assert "local: removed 2 kept containers" in cleaned.stdout
    assert docker_client.containers.list(all=True, filters=label) == []
