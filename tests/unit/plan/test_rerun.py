"""shardrun.plan.rerun: `run --failed` reruns a failed split group with the files it had,
its command as recorded, and what reaches the host as the config has it now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shardrun.config.load import load
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard, Volume, to_json
from shardrun.plan.rerun import only_failed
from shardrun.report import history
from shardrun.state import layout

TOML = """
[[shard]]
name = "t-{index}"
count = 2
split = ["tests/*.py"]
command = "pytest {files}"
volumes = ["./data:/data:ro"]
"""


def project(tmp_path: Path, options: dict) -> tuple:
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text(TOML)
    cfg = load(tmp_path / "shards.toml")
    runs = tmp_path / ".shardrun" / "runs"
    (runs / "r1").mkdir(parents=True)
    entry = {"name": "t-1", "status": "FAIL", "worker": "local", "options": options}
    (runs / "r1" / "report.json").write_text(json.dumps({"run_id": "r1", "shards": [entry]}))
    (runs / "latest").symlink_to("r1")
    now = [
        Shard(
            name=f"t-{i}",
            command=("pytest", f"tests/{i}.py"),
            files=(f"tests/{i}.py",),
            volumes=(Volume(str(tmp_path / "data"), "/data", True),),
        )
        for i in (1, 2)
    ]
    return cfg, now


def test_a_failed_group_reruns_its_files_with_the_configs_mounts(tmp_path: Path):
    recorded = to_json(
        Shard(
            name="t-1",
            command=("pytest", "tests/old.py"),
            files=("tests/old.py",),
            docker_socket=True,
            network="host",
            volumes=(Volume("/var/run/docker.sock", "/var/run/docker.sock"), Volume("/", "/host")),
        )
    )
    cfg, now = project(tmp_path, recorded)
    run_id, shards = only_failed(history.load(layout.state_dir(cfg.root)), now)
    assert run_id == "r1" and [s.name for s in shards] == ["t-1"]
    (shard,) = shards
    assert shard.command == ("pytest", "tests/old.py") and shard.files == ("tests/old.py",)
    assert shard.volumes == now[0].volumes and not shard.docker_socket
    assert shard.network is None


def test_a_record_that_is_no_shard_is_one_line(tmp_path: Path):
    cfg, now = project(tmp_path, {"name": "t-1", "files": ["../../etc/passwd"]})
    with pytest.raises(ConfigError, match="run r1's record of t-1 cannot be rerun") as info:
        only_failed(history.load(layout.state_dir(cfg.root)), now)
    assert "--shard t-1" in str(info.value) and "\n" not in str(info.value)
