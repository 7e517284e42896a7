"""shardrun.run_options: the one table of run options that config, plan, execute and repro
follow. A new option is a RunOptions field, a row in the table and a sample here."""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path

import pytest

from shardrun.config import load as config
from shardrun.config.load import load
from shardrun.model.options import BY_KEY, OPTIONS
from shardrun.model.shard import RunOptions, Shard, Volume
from shardrun.plan.expand import expand
from shardrun.repro.docker_run import docker_run_argv

# For each option: a value as shards.toml writes it, and what shard 2 of 3 gets from it.
# Placeholders are in the samples of the options that fill them in.
SAMPLES = {
    "env": ('{ N = "{index}/{total}" }', {"N": "2/3"}),
    "secret_env": ('["TOKEN"]', ("TOKEN",)),
    "volumes": ('["cache:/c:ro"]', (Volume("cache", "/c", read_only=True),)),
    "workdir": ('"/src"', "/src"),
    "user": ("1000", "1000"),
    "shm_size": ('"1k"', 1024),
    "network": ('"none"', "none"),
    "cpus": ("2", 2.0),
    "memory": ('"2k"', 2048),
    "security_opt": ('["no-new-privileges"]', ("no-new-privileges",)),
    "entrypoint": ('["/run-{total}.sh", "-x"]', ("/run-3.sh", "-x")),
    "command": ('"pytest --shard {index}"', ("pytest", "--shard", "2")),
    "timeout": ('"1m"', 60.0),
    "docker_socket": ("true", True),
    "artifacts": ('["/out/{index}", "/shots/*.png"]', ("/out/2", "/shots/*.png")),
    "artifacts_when": ('"always"', "always"),
    "artifacts_max": ('"3m"', 3 * 1024 * 1024),
    "junit": ('"/tmp/junit-{index}.xml"', "/tmp/junit-2.xml"),
    "reuse": ("true", True),
}
# Options shardrun acts on itself, with nothing to tell docker.
NOT_FOR_DOCKER = {
    "timeout",
    "docker_socket",
    "artifacts",
    "artifacts_when",
    "artifacts_max",
    "junit",
    "reuse",
}
SECRETS = {"TOKEN": "s3cret"}


def test_every_run_option_field_has_exactly_one_row() -> None:
    rows = Counter(option.name for option in OPTIONS)
    assert rows == Counter(f.name for f in fields(RunOptions))


def test_the_table_keys_are_the_keys_shards_toml_accepts() -> None:
    assert sorted(BY_KEY) == sorted(config._RUN_KEYS)
    assert all(BY_KEY[option.key] is option for option in OPTIONS)


def test_every_row_has_a_sample() -> None:
    assert set(SAMPLES) == {option.name for option in OPTIONS}


def shard_2_of_3(tmp_path: Path, defaults: str = "", own: str = "") -> Shard:
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    text = f"""
        [defaults]
        {defaults}
        [[shard]]
        name = "s-{{index}}"
        count = 3
        {own}
        """
    (tmp_path / "shards.toml").write_text(textwrap.dedent(text))
    return expand(load(cwd=tmp_path))[1]


@pytest.mark.parametrize("where", ["defaults", "shard"])
@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.key)
def test_a_sample_travels_from_the_file_to_both_mappings(tmp_path, option, where) -> None:
    written, expected = SAMPLES[option.name]
    line = f"{option.key} = {written}"
    shard = shard_2_of_3(tmp_path, **{"defaults" if where == "defaults" else "own": line})
    # Parsed, merged (inherited or the shard's own) and filled, and no other option set;
    # a shard's own reuse = true is also noted as its own.
    own = {"reuse_own": True} if (option.name, where) == ("reuse", "shard") else {}
    assert shard == replace(Shard(name="s-2"), **{option.name: expected}, **own)

    value, unset = getattr(shard, option.name), getattr(Shard(name="s-2"), option.name)
    created = option.create(value, SECRETS) != option.create(unset, SECRETS)
    run = docker_run_argv(shard, "img", {}) != docker_run_argv(Shard(name="s-2"), "img", {})
    assert created == run == (option.name not in NOT_FOR_DOCKER)


def test_only_the_argv_options_env_and_container_paths_fill_placeholders() -> None:
    templates = {
        "command": ("{index}",),
        "entrypoint": ("{total}",),
        "env": {"A": "{index}"},
        "artifacts": ("/out/{index}",),
        "junit": "/tmp/{index}.xml",
    }
    for option in OPTIONS:
        value = templates.get(option.name, "{index}")
        filled = option.fill(value, 2, 3)
        assert (filled != value) == (option.name in templates), option.key
