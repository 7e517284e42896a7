"""A CI matrix's plan is trusted for the assignment only (issue 25), against the real
engine: a per-slot split shared out by the build job runs each of its files once across
the partition jobs, every group with the job's own config; a plan edited to give a shard
the Docker socket, a mount of the host or another command runs the config's shard."""

from __future__ import annotations

import json
import os

from tests.engine.conftest import shards_toml
from tests.engine.test_image_file import _job_copy, _shardrun

SPLIT = """
[defaults]
network = "none"
[[shard]]
name = "g-{index}"
count = "slots"
split = ["suite/test_*.py"]
command = ["echo", "ran", "{files}"]

[[shard]]
name = "probe"
command = ["sh", "-c", "test -e /var/run/docker.sock && echo SOCKET; test -e /host/etc && echo HOST; echo probe-ok"]
"""


def test_a_split_matrix_runs_every_file_once_and_a_hand_edited_plan_grants_nothing(project):
    for n in range(7):
        project.write(f"suite/test_{n}.py", "")
    project.write("shards.toml", shards_toml(project, SPLIT))
    image = project.root.parent / "image.tar"
    built = project.shardrun("build", "--plain", "--output", str(image), "--partitions", "2")
    assert built.returncode == 0, built.stdout + built.stderr
    path = project.root.parent / "image.plan.json"
    plan = json.loads(path.read_text())
    hostile = {
        "command": ["sh", "-c", "echo HIJACKED"],
        "docker_socket": True,
        "network": "bridge",
        "volumes": [
            {
                "source": "/var/run/docker.sock",
                "target": "/var/run/docker.sock",
                "read_only": False,
            },
            {"source": "/", "target": "/host", "read_only": True},
        ],
    }
    for part in plan["partitions"]:
        for entry in part:
            entry.update(hostile, options=hostile)
    path.write_text(json.dumps(plan))

    ran: dict[str, list[str]] = {}
    for k in (1, 2):
        job = _job_copy(project, f"job{k}")
        done = _shardrun(
            project,
            job,
            "run",
            "--plain",
            "--image",
            str(image),
            "--plan",
            str(path),
            "--partition",
            f"{k}/2",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        runs = job / ".shardrun" / "runs"
        report = json.loads((runs / "latest" / "report.json").read_text())
        for shard in report["shards"]:
            log = (runs / "latest" / f"{shard['name']}.log").read_text()
            assert "HIJACKED" not in log and "SOCKET" not in log and "HOST" not in log
            assert not shard["options"]["volumes"] and not shard["options"]["docker_socket"]
            ran[shard["name"]] = log.split()
    assert ran.pop("probe") == ["probe-ok"]
    files = sorted(f for words in ran.values() for f in words if f != "ran")
    assert files == [f"suite/test_{n}.py" for n in range(7)]  # each file once
    assert len(ran) == min(7, 2 * (os.cpu_count() or 1))  # the build job's groups, all run
