"""Shell completion through the real CLI, as bash, zsh and fish ask for it: shard names
come from the config, without touching an engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SHARDS = """
[[shard]]
name = "unit-{index}"
count = 2
command = "true"
[[shard]]
name = "lint"
command = "true"
"""


def complete(cwd: Path, env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "shardrun"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # No engine anywhere: completion must not need one.
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock", **env},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text(SHARDS)
    return tmp_path


def bash(words: str) -> dict[str, str]:
    # COMP_CWORD: the word being completed, the empty one after a trailing space.
    return {
        "_SHARDRUN_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }


def test_bash_completes_shard_names_for_shard_repro_and_show(project: Path):
    assert complete(project, bash("shardrun run --shard unit")) == ["unit-1", "unit-2"]
    assert complete(project, bash("shardrun repro l")) == ["lint"]
    assert complete(project, bash("shardrun show unit-")) == ["unit-1", "unit-2"]


def test_zsh_and_fish_complete_them_too(project: Path):
    zsh = complete(
        project,
        {"_SHARDRUN_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "shardrun repro unit-"},
    )
    assert "unit-1" in " ".join(zsh) and "lint" not in " ".join(zsh)
    fish = complete(
        project,
        {
            "_SHARDRUN_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_ARGS": "shardrun repro ",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
        },
    )
    assert fish == ["unit-1", "unit-2", "lint"]


def test_a_broken_config_completes_nothing_and_prints_no_error(tmp_path: Path):
    (tmp_path / "shards.toml").write_text("[[shard]\n")
    assert complete(tmp_path, bash("shardrun repro ")) == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_install_scripts_exist_for_each_shell(tmp_path: Path, shell: str):
    script = complete(tmp_path, {"_SHARDRUN_COMPLETE": f"source_{shell}"})
    assert "_SHARDRUN_COMPLETE" in " ".join(script)
