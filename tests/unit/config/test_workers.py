"""Workers as the user names them: `--worker VALUE[*SLOTS]`, [[worker]] tables, and what a
worker's own volumes do to a shard (shardrun.config, shardrun.plan)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shardrun.config.load import load
from shardrun.config.spec import Config, WorkerSpec
from shardrun.config.workers import check_slots, parse_worker_option
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard, Volume
from shardrun.plan.expand import check_remote_binds, for_worker

# ---- --worker VALUE[*SLOTS] ----------------------------------------------------------


@pytest.mark.parametrize(
    "value, spec",
    [
        ("box2", WorkerSpec(name=None, context="box2", host=None, slots=None)),
        ("default", WorkerSpec(name=None, context="default", host=None, slots=None)),
        ("box2*3", WorkerSpec(name=None, context="box2", host=None, slots=3)),
        ("ssh://ci@box2*8", WorkerSpec(name=None, context=None, host="ssh://ci@box2", slots=8)),
        ("ssh://ci@box2:2222", WorkerSpec(None, None, "ssh://ci@box2:2222", None)),
        ("tcp://198.18.0.2:2375", WorkerSpec(None, None, "tcp://198.18.0.2:2375", None)),
        ("unix:///tmp/x.sock*2", WorkerSpec(None, None, "unix:///tmp/x.sock", 2)),
    ],
)
def test_worker_option_is_a_context_or_an_engine_url_with_optional_slots(value, spec):
    assert parse_worker_option(value) == spec


@pytest.mark.parametrize(
    "value, what",
    [
        ("*3", "names no worker"),
        ("box*0", '"0" is not a slot count'),
        ("box*x", '"x" is not a slot count'),
        ("box*", '"" is not a slot count'),
        ("box*-1", '"-1" is not a slot count'),
        ("box*257", "more than 256 slots"),
        ("box*" + "9" * 5000, "more than 256 slots"),  # beyond what int() converts
        ("ftp://host", '"ftp://host" is not a docker host URL'),
        ("tcp://", '"tcp://" is not a docker host URL'),
        ("ssh://", '"ssh://" is not a docker host URL'),
        ("unix://", '"unix://" is not a docker host URL'),
        ("tcp://box:notaport", '"tcp://box:notaport" is not a docker host URL'),
    ],
)
def test_bad_worker_option_is_one_line_naming_the_flag(value, what):
    with pytest.raises(ConfigError) as info:
        parse_worker_option(value)

    message = str(info.value)
    assert message.startswith(f'--worker "{value}": {what}; ')
    assert "\n" not in message


def test_the_most_slots_a_worker_or_jobs_may_have():
    assert parse_worker_option("box*256").slots == check_slots(256, "--jobs 256") == 256
    with pytest.raises(ConfigError, match=r"^--jobs 257: more than 256 slots; give at most 256"):
        check_slots(257, "--jobs 257")


def test_a_superscript_slot_count_is_a_config_error():
    with pytest.raises(ConfigError, match=r'^--worker "box\*²": "²" is not a slot count'):
        parse_worker_option("box*²")


# ---- [[worker]] in shards.toml -------------------------------------------------------

SHARD = '[[shard]]\nname = "unit"\ncommand = "pytest -q"\n'


def load_text(folder: Path, text: str) -> Config:
    (folder / "Dockerfile.test").write_text("FROM scratch\n")
    (folder / "shards.toml").write_text(SHARD + textwrap.dedent(text))
    return load(cwd=folder)


def error_of(folder: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(folder, text)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_worker_tables_are_read_in_order(tmp_path: Path):
    config = load_text(
        tmp_path,
        """
        [[worker]]
        context = "box2"
        [[worker]]
        name = "big"
        host = "ssh://ci@box3:2222"
        slots = 16
        volumes = ["/srv/data:/data:ro", "cache:/root/.cache", "./rel:/rel"]
        [[worker]]
        host = "unix:///run/user/1000/docker.sock"
        slots = 1
        """,
    )

    assert config.workers == (
        WorkerSpec(name=None, context="box2", host=None, slots=None),
        WorkerSpec(
            name="big",
            context=None,
            host="ssh://ci@box3:2222",
            slots=16,
            volumes=(
                Volume("/srv/data", "/data", read_only=True),
                Volume("cache", "/root/.cache"),
                Volume(str(tmp_path / "rel"), "/rel"),  # relative to the config's folder
            ),
        ),
        WorkerSpec(name=None, context=None, host="unix:///run/user/1000/docker.sock", slots=1),
    )


@pytest.mark.parametrize(
    "table",
    [
        '[[worker]]\nname = "w"\n',
        '[[worker]]\ncontext = "a"\nhost = "ssh://b"\n',
    ],
    ids=["neither", "both"],
)
def test_a_worker_needs_exactly_one_of_context_and_host(tmp_path: Path, table):
    message = error_of(tmp_path, table)

    assert message.startswith("shards.toml: worker[1]: needs exactly one of context and host; ")


def test_two_workers_with_one_name_is_an_error_naming_both(tmp_path: Path):
    message = error_of(
        tmp_path,
        """
        [[worker]]
        name = "w"
        context = "a"
        [[worker]]
        context = "c"
        [[worker]]
        name = "w"
        host = "ssh://b"
        """,
    )

    assert message.startswith('shards.toml: worker[3]: name "w" is also used by worker[1]; ')


def test_unnamed_workers_on_one_context_are_not_a_duplicate(tmp_path: Path):
    config = load_text(tmp_path, '[[worker]]\ncontext = "a"\n[[worker]]\ncontext = "a"\n')

    assert [w.context for w in config.workers] == ["a", "a"]


def test_a_bad_worker_host_names_the_key(tmp_path: Path):
    message = error_of(tmp_path, '[[worker]]\nhost = "box2"\n')

    assert message.startswith('shards.toml: worker[1].host: "box2" is not a docker host URL; ')


def test_a_worker_says_how_its_image_travels(tmp_path: Path):
    config = load_text(
        tmp_path,
        '[[worker]]\ncontext = "a"\n[[worker]]\nhost = "ssh://b"\ncompress = "gzip"\n',
    )

    assert [w.compress for w in config.workers] == ["auto", "gzip"]


def test_an_unknown_codec_names_the_key_and_the_choices(tmp_path: Path):
    message = error_of(tmp_path, '[[worker]]\nhost = "ssh://b"\ncompress = "brotli"\n')

    assert message == (
        'shards.toml: worker[1].compress: "brotli" is not a codec; '
        'use one of "auto", "none", "gzip", "zstd"'
    )


# ---- plan.for_worker -----------------------------------------------------------------

DATA = Volume("/home/me/data", "/data", read_only=True)
CACHE = Volume("cache", "/root/.cache")
SHARD_WITH_VOLUMES = Shard(name="unit-1", command=("pytest",), volumes=(DATA, CACHE))


def test_a_worker_volume_on_the_same_target_replaces_the_shards():
    theirs = Volume("/srv/data", "/data", read_only=True)
    extra = Volume("/srv/tmp", "/scratch")

    shard = for_worker(SHARD_WITH_VOLUMES, (theirs, extra))

    assert shard.volumes == (CACHE, theirs, extra)
    assert shard.name == "unit-1" and shard.command == ("pytest",)
    assert SHARD_WITH_VOLUMES.volumes == (DATA, CACHE)  # the plan's shard is unchanged


def test_a_worker_without_volumes_runs_the_shard_as_planned():
    assert for_worker(SHARD_WITH_VOLUMES, ()) is SHARD_WITH_VOLUMES


# ---- plan.check_remote_binds ---------------------------------------------------------

NAMED_ONLY = Shard(name="named", volumes=(CACHE,))


def test_a_bind_on_a_remote_worker_that_does_not_declare_it_is_an_error():
    with pytest.raises(ConfigError) as info:
        check_remote_binds([NAMED_ONLY, SHARD_WITH_VOLUMES], [("box2", True, ())])

    message = str(info.value)
    assert 'shard "unit-1"' in message
    assert "worker box2" in message
    assert "/home/me/data at /data" in message
    assert 'volumes = ["/path/on/box2:/data"]' in message


def test_a_bind_is_fine_on_a_remote_worker_that_declares_the_target():
    declared = (Volume("/srv/data", "/data"),)

    check_remote_binds([SHARD_WITH_VOLUMES], [("box2", True, declared)])


def test_named_volumes_are_fine_on_remote_workers():
    check_remote_binds([NAMED_ONLY], [("box2", True, ())])


def test_binds_are_fine_on_local_workers():
    check_remote_binds([SHARD_WITH_VOLUMES], [("local", False, ()), ("sock", False, ())])


def test_every_remote_worker_is_checked():
    declared = (Volume("/srv/data", "/data"),)

    with pytest.raises(ConfigError, match=r"worker box3 is remote"):
        check_remote_binds(
            [SHARD_WITH_VOLUMES],
            [("local", False, ()), ("box2", True, declared), ("box3", True, ())],
        )
