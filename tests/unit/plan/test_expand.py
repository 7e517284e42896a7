"""shardrun.plan: matrix expansion, defaults merging, selection and ordering."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shardrun.config.load import load
from shardrun.config.spec import Config
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard, Volume
from shardrun.plan.expand import expand, order, select


def config_of(tmp_path: Path, text: str) -> Config:
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text(textwrap.dedent(text))
    return load(cwd=tmp_path)


def names(shards: list[Shard]) -> list[str]:
    return [s.name for s in shards]


# ---- expand --------------------------------------------------------------------------


def test_count_expands_placeholders_in_name_command_entrypoint_and_env(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        """
        [[shard]]
        name = "lint"
        command = "ruff check ."
        [[shard]]
        name = "unit-{index}-of-{total}"
        count = 3
        command = "pytest --shard {index}/{total}"
        entrypoint = ["/run-{index}.sh"]
        env = { SHARD = "{index}", N = "{total}", KEEP = "{other}" }
        """,
    )
    shards = expand(config)
    assert names(shards) == ["lint", "unit-1-of-3", "unit-2-of-3", "unit-3-of-3"]
    second = shards[2]
    assert second.command == ("pytest", "--shard", "2/3")
    assert second.entrypoint == ("/run-2.sh",)
    # Only {index} and {total} are placeholders; other braces stay as written.
    assert dict(second.env) == {"SHARD": "2", "N": "3", "KEEP": "{other}"}


def test_single_shard_fills_placeholders_with_one_of_one(tmp_path: Path) -> None:
    config = config_of(tmp_path, '[[shard]]\nname = "only-{index}"\ncommand = "x {total}"\n')
    (shard,) = expand(config)
    assert (shard.name, shard.command) == ("only-1", ("x", "1"))


def test_shell_braces_in_commands_survive(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        """
        [[shard]]
        name = "s-{index}"
        count = 2
        command = ["sh", "-c", "echo ${HOME} {index} {}"]
        """,
    )
    assert expand(config)[1].command == ("sh", "-c", "echo ${HOME} 2 {}")


def test_shard_values_override_defaults_and_unset_ones_inherit(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        """
        [defaults]
        command = "pytest -q"
        entrypoint = "/entry"
        workdir = "/src"
        user = "1000"
        shm-size = "1g"
        network = "none"
        cpus = 2
        memory = "4g"
        timeout = "10m"
        security-opt = ["seccomp=unconfined"]
        [[shard]]
        name = "plain"
        [[shard]]
        name = "custom"
        command = ["make", "test"]
        workdir = "/other"
        cpus = 0.5
        timeout = 30
        security-opt = ["no-new-privileges"]
        """,
    )
    plain, custom = expand(config)
    assert plain == Shard(
        name="plain",
        command=("pytest", "-q"),
        entrypoint=("/entry",),
        workdir="/src",
        user="1000",
        shm_size=1024**3,
        security_opt=("seccomp=unconfined",),
        network="none",
        cpus=2.0,
        memory=4 * 1024**3,
        timeout=600.0,
    )
    assert custom.command == ("make", "test")
    assert (custom.workdir, custom.cpus, custom.timeout) == ("/other", 0.5, 30.0)
    assert custom.security_opt == ("no-new-privileges",)  # replaces, does not append
    assert (custom.user, custom.memory, custom.entrypoint) == ("1000", 4 * 1024**3, ("/entry",))


def test_no_command_anywhere_means_the_image_cmd(tmp_path: Path) -> None:
    (shard,) = expand(config_of(tmp_path, '[[shard]]\nname = "a"\n'))
    assert shard.command is None and shard.entrypoint is None


def test_env_merges_key_by_key_with_the_shard_winning(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        """
        [defaults]
        env = { A = "default", B = "default" }
        [[shard]]
        name = "s"
        env = { B = "shard", C = "shard" }
        """,
    )
    assert dict(expand(config)[0].env) == {"A": "default", "B": "shard", "C": "shard"}


def test_volumes_append_and_a_shard_volume_replaces_the_default_on_the_same_target(
    tmp_path: Path,
) -> None:
    config = config_of(
        tmp_path,
        """
        [defaults]
        volumes = ["cache:/root/.cache", "/data:/data:ro"]
        [[shard]]
        name = "s"
        volumes = ["/fresh:/data", "out:/out"]
        """,
    )
    assert expand(config)[0].volumes == (
        Volume("cache", "/root/.cache"),
        Volume("/fresh", "/data"),
        Volume("out", "/out"),
    )


def test_secret_env_names_add_to_the_defaults_and_reach_every_counted_shard(
    tmp_path: Path,
) -> None:
    config = config_of(
        tmp_path,
        """
        [defaults]
        secret-env = ["B", "A"]
        [[shard]]
        name = "s-{index}"
        count = 2
        secret-env = ["C", "A"]
        [[shard]]
        name = "plain"
        """,
    )
    first, second, plain = expand(config)
    assert first.secret_env == second.secret_env == ("B", "A", "C")
    assert plain.secret_env == ("B", "A")


@pytest.mark.parametrize(
    ("defaults", "shard"),
    [
        ('env = { TOKEN = "x" }', 'secret-env = ["TOKEN"]'),
        ('secret-env = ["TOKEN"]', 'env = { TOKEN = "x" }'),
        ("", 'secret-env = ["TOKEN"]\nenv = { TOKEN = "x" }'),
    ],
    ids=["env-in-defaults", "secret-in-defaults", "both-in-shard"],
)
def test_a_name_in_both_secret_env_and_env_is_an_error(
    tmp_path: Path, defaults: str, shard: str
) -> None:
    config = config_of(tmp_path, f'[defaults]\n{defaults}\n[[shard]]\nname = "s"\n{shard}\n')
    with pytest.raises(ConfigError) as info:
        expand(config)
    assert str(info.value) == (
        'shards.toml: shard[1] ("s"): "TOKEN" is in both secret-env and env (after merging '
        "[defaults]); keep it in one: env sets the value, secret-env passes the host's"
    )


@pytest.mark.parametrize(
    "volume",
    [
        "/var/run/docker.sock:/var/run/docker.sock",
        "/run/docker.sock:/docker.sock:ro",
        "/run/user/1000/docker.sock:/var/run/docker.sock",
        "./docker.sock:/s",
    ],
)
def test_mounting_the_docker_socket_needs_docker_socket_true(tmp_path: Path, volume: str) -> None:
    config = config_of(tmp_path, f'[[shard]]\nname = "ci"\nvolumes = ["{volume}"]\n')
    with pytest.raises(ConfigError) as info:
        expand(config)
    message = str(info.value)
    source = config.shards[0].options.volumes[0].source
    assert message.startswith(f'shards.toml: shard[1] ("ci"): volume {source}:/')
    assert message.endswith(
        " gives the container the Docker engine; set docker-socket = true in this [[shard]] "
        "(or [defaults]) if it really needs it"
    )


def test_a_default_socket_volume_is_named_in_every_shard_that_inherits_it(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        """
        [defaults]
        volumes = ["/var/run/docker.sock:/var/run/docker.sock"]
        [[shard]]
        name = "builder"
        docker-socket = true
        [[shard]]
        name = "unit"
        """,
    )
    with pytest.raises(ConfigError, match=r'^shards.toml: shard\[2\] \("unit"\): volume /var/'):
        expand(config)


@pytest.mark.parametrize(
    ("defaults", "shard", "allowed"),
    [
        ("", "docker-socket = true", True),
        ("docker-socket = true", "", True),
        ("docker-socket = true", "docker-socket = false", False),
        ("docker-socket = false", "docker-socket = true", True),
        ("", "docker-socket = false", False),
    ],
)
def test_the_shards_docker_socket_wins_over_the_default(
    tmp_path: Path, defaults: str, shard: str, allowed: bool
) -> None:
    config = config_of(
        tmp_path,
        f"""
        [defaults]
        {defaults}
        [[shard]]
        name = "ci-{{index}}"
        count = 2
        volumes = ["/var/run/docker.sock:/var/run/docker.sock"]
        {shard}
        """,
    )
    if allowed:
        assert [s.docker_socket for s in expand(config)] == [True, True]
    else:
        with pytest.raises(ConfigError, match="set docker-socket = true"):
            expand(config)


def test_sockets_by_other_names_and_named_volumes_are_not_the_docker_socket(
    tmp_path: Path,
) -> None:
    config = config_of(
        tmp_path,
        '[[shard]]\nname = "s"\nvolumes = ["docker.sock:/a", "/run/docker.socket:/b"]\n',
    )
    (shard,) = expand(config)
    assert shard.docker_socket is None and len(shard.volumes) == 2


def test_shards_are_hashable_and_their_env_read_only(tmp_path: Path) -> None:
    (shard,) = expand(config_of(tmp_path, '[[shard]]\nname = "s"\nenv = { A = "1" }\n'))
    assert {shard: 1}[shard] == 1
    with pytest.raises(TypeError):
        shard.env["A"] = "2"  # type: ignore[index]


# ---- select --------------------------------------------------------------------------

SHARDS = [Shard(name=n) for n in ["lint", "unit-1", "unit-2", "unit-10", "e2e-chrome"]]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ([], ["lint", "unit-1", "unit-2", "unit-10", "e2e-chrome"]),
        (["lint"], ["lint"]),
        (["unit-*"], ["unit-1", "unit-2", "unit-10"]),
        (["unit-?"], ["unit-1", "unit-2"]),
        (["unit-[12]"], ["unit-1", "unit-2"]),
        # Result keeps shard order, not pattern order, and overlapping patterns do not repeat.
        (["e2e-*", "lint", "*"], ["lint", "unit-1", "unit-2", "unit-10", "e2e-chrome"]),
    ],
)
def test_select_by_glob(patterns: list[str], expected: list[str]) -> None:
    assert names(select(SHARDS, patterns)) == expected


def test_select_is_case_sensitive() -> None:
    with pytest.raises(ConfigError):
        select(SHARDS, ["LINT"])


def test_a_pattern_that_matches_nothing_is_an_error_naming_its_source() -> None:
    with pytest.raises(ConfigError) as info:
        select(SHARDS, ["lint", "foo*"])
    assert str(info.value) == '--shard "foo*": matches no shard; shardrun list shows the names'
    with pytest.raises(ConfigError, match=r'^--failed "gone": matches no shard'):
        select(SHARDS, ["gone"], source="--failed")


# ---- order ---------------------------------------------------------------------------


def test_order_longest_first_with_unrecorded_shards_first_in_file_order() -> None:
    shards = [Shard(name=n) for n in ["a", "new1", "b", "c", "new2", "d"]]
    durations = {"a": 10.0, "b": 300.0, "c": 10.0, "d": 45.5, "removed": 999.0}
    assert names(order(shards, durations)) == ["new1", "new2", "b", "d", "a", "c"]


def test_order_without_history_keeps_file_order() -> None:
    assert order(SHARDS, {}) == SHARDS
