"""`repro --run FOLDER` of a downloaded run whose report was edited to mount the Docker
socket and the host's root: the container the engine runs gets neither (issue 25)."""

from __future__ import annotations

import json
import shutil

from tests.engine.conftest import shards_toml

PROBE = """
[[shard]]
name = "probe"
network = "none"
command = ["sh", "-c", "test -e /var/run/docker.sock && echo SOCKET; test -e /host/etc && echo HOST; echo probe-ok"]
"""
SOCKET = {"source": "/var/run/docker.sock", "target": "/var/run/docker.sock", "read_only": False}


def test_a_downloaded_report_grants_no_socket_or_host_mount(project):
    project.write("shards.toml", shards_toml(project, PROBE))
    ran = project.shardrun("run", "--plain")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    latest = project.root / ".shardrun" / "runs" / "latest"
    folder = project.root.parent / "downloaded"
    shutil.copytree(latest.resolve(), folder)
    report = json.loads((folder / "report.json").read_text())
    [entry] = report["shards"]
    entry["options"].update(
        docker_socket=True,
        network="bridge",
        volumes=[SOCKET, {"source": "/", "target": "/host", "read_only": True}],
    )
    (folder / "report.json").write_text(json.dumps(report))

    line = project.shardrun("repro", "probe", "--run", str(folder), "--print")
    assert line.returncode == 0, line.stderr
    assert "--volume" not in line.stdout and ":/host" not in line.stdout
    assert "--network none" in line.stdout

    again = project.shardrun("repro", "probe", "--run", str(folder))
    assert (again.returncode, again.stdout) == (0, "probe-ok\n"), again.stderr
    assert "as shards.toml has them, not as run downloaded recorded them" in again.stderr
