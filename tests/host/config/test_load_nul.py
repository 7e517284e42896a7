"""A NUL character anywhere in shards.toml is a one-line config error naming the key path,
never a container the engine refuses (which reads as a lost worker); and the slot bounds
reach the command line as one line and exit 2.

Host-only, as test_load_fuzz.py: hypothesis is not in the test image.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardrun.config.load import load
from shardrun.model.errors import ConfigError
from tests.host.config.test_load_fuzz import project_folder, toml_document

# Every field that holds text, each once: what reaches the engine as an argv, an
# environment, a path, a label, a context or a host.
VALID = {
    "project": "demo",
    "timings": "ci/timings.json",
    "image": {"target": "test", "tag": "demo:1", "builder": "box", "build-args": {"BASE": "py"}},
    "defaults": {
        "env": {"A": "1"},
        "secret-env": ["TOKEN"],
        "volumes": ["./data:/data:ro", "cache:/cache"],
        "workdir": "/src",
        "user": "1000:1000",
        "network": "none",
        "security-opt": ["no-new-privileges"],
        "shm-size": "64m",
        "memory": "1g",
        "timeout": "30m",
    },
    "shard": [
        {
            "name": "unit-{index}",
            "count": 2,
            "command": ["pytest", "-q", "-k", "{index}"],
            "entrypoint": ["/entry.sh"],
            "env": {"B": "x {index}"},
            "artifacts": ["/out", "/shots/*.png"],
            "artifacts-when": "always",
            "artifacts-max": "20m",
            "junit": "/tmp/junit.xml",
        },
        {"name": "lint", "command": "ruff check .", "volumes": ["~/cache:/c:rw"]},
    ],
    "worker": [
        {"name": "w1", "context": "box", "volumes": ["cache:/c"], "compress": "zstd"},
        {"host": "ssh://ci@box2:22"},
    ],
}


def text_places(node: Any, where: str) -> list[tuple[tuple, str, bool]]:
    """(path in the document, key path as messages name it, is a key) of every string."""
    places: list[tuple[tuple, str, bool]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            inner = f"{where}.{key}" if where else key
            places.append(((key,), inner, True))
            places += [
                ((key, *path), name, is_key) for path, name, is_key in text_places(value, inner)
            ]
    elif isinstance(node, list):
        for i, value in enumerate(node):
            places += [
                ((i, *path), name, is_key)
                for path, name, is_key in text_places(value, f"{where}[{i + 1}]")
            ]
    elif isinstance(node, str):
        places.append(((), where, False))
    return places


PLACES = text_places(VALID, "")


def with_nul(node: Any, path: tuple, is_key: bool, at: float) -> Any:
    """A copy of `node` with a NUL inserted at `at` (0..1) into the string at `path`."""

    def insert(text: str) -> str:
        cut = round(at * len(text))
        return text[:cut] + "\0" + text[cut:]

    if not path:
        return insert(node)
    head, rest = path[0], path[1:]
    if isinstance(node, list):
        return [with_nul(v, rest, is_key, at) if i == head else v for i, v in enumerate(node)]
    if is_key and not rest:
        return {(insert(k) if k == head else k): v for k, v in node.items()}
    return {k: with_nul(v, rest, is_key, at) if k == head else v for k, v in node.items()}


def test_the_valid_document_loads_and_names_every_kind_of_text() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = project_folder(tmp)
        (folder / "shards.toml").write_text(toml_document(VALID))
        config = load(cwd=folder)
    assert [s.name for s in config.shards] == ["unit-{index}", "lint"]
    names = {name for _, name, _ in PLACES}
    assert {"shard[1].command[4]", "defaults.env.A", "worker[2].host", "project"} <= names
    assert len(PLACES) > 60


@settings(max_examples=300, deadline=None)
@given(place=st.sampled_from(PLACES), at=st.floats(0, 1))
def test_a_nul_in_any_text_is_one_line_naming_the_key_path(
    place: tuple[tuple, str, bool], at: float
) -> None:
    path, name, is_key = place
    doc = with_nul(VALID, path, is_key, at)
    with tempfile.TemporaryDirectory() as tmp:
        folder = project_folder(tmp)
        (folder / "shards.toml").write_text(toml_document(doc))
        with pytest.raises(ConfigError) as info:
            load(cwd=folder)
    message = str(info.value)
    assert "\n" not in message and "\0" not in message, message
    assert "holds a NUL character" in message and message.endswith("cannot carry one"), message
    # The key path as the file spells it, with the NUL of a key spelled out.
    shown = name if not is_key else name[: name.rfind(path[-1])]
    assert message.startswith(f"shards.toml: {shown}"), message


def shardrun(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shardrun", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_line_refuses_a_nul_and_too_many_slots_in_one_line(tmp_path: Path) -> None:
    for name, env in (("nul", {"TOKEN": "a\0b"}), ("ok", {"TOKEN": "ab"})):
        (tmp_path / name).mkdir()
        project_folder(str(tmp_path / name))
        doc = {"shard": [{"name": "s", "command": "true", "env": env}]}
        (tmp_path / name / "shards.toml").write_text(toml_document(doc))
    for folder, args, expected in (
        ("nul", ["list"], "shards.toml: shard[1].env.TOKEN: holds a NUL character"),
        ("nul", ["run", "--plain"], "shards.toml: shard[1].env.TOKEN: holds a NUL character"),
        ("ok", ["run", "--plain", "--jobs", "257"], "--jobs 257: more than 256 slots"),
        ("ok", ["run", "--plain", "-w", "default*1000"], '--worker "default*1000": more than'),
    ):
        done = shardrun(tmp_path / folder, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith(f"shardrun: error: {expected}"), done.stderr
        assert len(done.stderr.splitlines()) == 1
