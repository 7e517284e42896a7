"""`reuse` in shards.toml: read in [defaults] and [[shard]], merged (the shard's own value
wins), its own table's `reuse = true` told apart (what a shard with a host path needs), a
non-bool one line; and the option as report.json records it and reads it back."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from shardrun.config.load import load
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard, to_json
from shardrun.plan.expand import expand
from shardrun.plan.reuse_key import eligible
from shardrun.state.shard_record import from_json


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "data").mkdir()
    return tmp_path


def shards(folder: Path, text: str) -> dict[str, Shard]:
    (folder / "shards.toml").write_text(textwrap.dedent(text))
    return {s.name: s for s in expand(load(cwd=folder), context_files=["t/a.py", "t/b.py"])}


def error_of(folder: Path, text: str) -> str:
    (folder / "shards.toml").write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load(cwd=folder)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_reuse_is_off_unless_asked(project: Path) -> None:
    found = shards(project, '[[shard]]\nname = "a"\ncommand = "true"\n')
    assert found["a"].reuse is None and not found["a"].reuse_own
    assert not eligible(found["a"])


def test_defaults_and_own_values_merge_and_own_is_told_apart(project: Path) -> None:
    found = shards(
        project,
        """
        [defaults]
        reuse = true
        command = "true"
        [[shard]]
        name = "inherits"
        [[shard]]
        name = "own-{index}"
        count = 2
        reuse = true
        [[shard]]
        name = "opts-out"
        reuse = false
        """,
    )
    assert (found["inherits"].reuse, found["inherits"].reuse_own) == (True, False)
    for name in ("own-1", "own-2"):
        assert (found[name].reuse, found[name].reuse_own) == (True, True)
    assert (found["opts-out"].reuse, found["opts-out"].reuse_own) == (False, False)
    assert [n for n, s in found.items() if eligible(s)] == ["inherits", "own-1", "own-2"]


def test_a_split_groups_keep_their_own_reuse(project: Path) -> None:
    found = shards(
        project,
        """
        [[shard]]
        name = "t-{index}"
        count = 2
        split = ["t/*.py"]
        command = "pytest {files}"
        reuse = true
        """,
    )
    assert sorted(f for s in found.values() for f in s.files) == ["t/a.py", "t/b.py"]
    assert len(found) == 2 and all(s.reuse_own for s in found.values())


@pytest.mark.parametrize(
    "reaches_out",
    [
        'volumes = ["./data:/data:ro"]',
        "docker-socket = true",
        'docker-socket = true\nvolumes = ["/var/run/docker.sock:/var/run/docker.sock"]',
    ],
    ids=["bind mount", "docker-socket", "socket volume"],
)
def test_a_shard_reaching_the_host_needs_its_own_reuse(project: Path, reaches_out: str) -> None:
    lines = [
        "[defaults]",
        "reuse = true",
        'command = "true"',
        "[[shard]]",
        'name = "by-defaults"',
        reaches_out,
        "[[shard]]",
        'name = "by-itself"',
        "reuse = true",
        reaches_out,
    ]
    found = shards(project, "\n".join(lines))
    assert not eligible(found["by-defaults"])
    assert eligible(found["by-itself"])


def test_a_named_volume_is_no_host_path(project: Path) -> None:
    found = shards(
        project,
        """
        [defaults]
        reuse = true
        [[shard]]
        name = "a"
        command = "true"
        volumes = ["cache:/root/.cache"]
        """,
    )
    assert eligible(found["a"])


@pytest.mark.parametrize("value", ['"yes"', "1", "[true]"])
@pytest.mark.parametrize("table", ["defaults", "shard"])
def test_a_reuse_that_is_not_true_or_false_is_one_line(project, table, value) -> None:
    if table == "defaults":
        text = f'[defaults]\nreuse = {value}\n[[shard]]\nname = "a"\n'
        where = "shards.toml: defaults.reuse"
    else:
        text = f'[[shard]]\nname = "a"\nreuse = {value}\n'
        where = 'shards.toml: shard[1] ("a").reuse'
    message = error_of(project, text)
    assert message.startswith(f"{where}: expected true or false")
    assert "reuse = true" in message


def test_report_json_records_reuse_and_reads_it_back() -> None:
    shard = Shard(name="a", command=("true",), reuse=True, reuse_own=True)
    data = json.loads(json.dumps(to_json(shard)))
    assert data["reuse"] is True
    assert "reuse_own" not in data  # a report, anyone's to edit, cannot grant it
    back = from_json(data)
    assert back.reuse is True and back.reuse_own is False


def test_a_report_of_before_reuse_still_reads() -> None:
    old = to_json(Shard(name="a", command=("true",)))
    del old["reuse"]
    assert from_json(old) == Shard(name="a", command=("true",))
