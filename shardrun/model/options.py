"""The run options a shard can set, each defined once: how shards.toml spells and parses it,
how a shard's value meets [defaults], whether {index}/{total} are filled in it, and what it
becomes for docker-py's `containers.create` and on a `docker run` command line.

config, plan, execute and repro loop over OPTIONS; a new option is a RunOptions field and
a row here. Pure: no docker import, so the unit tests (run without docker-py) can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.model.shard import Volume, fill
from shardrun.model.values import (
    as_bool,
    as_positive,
    as_str,
    as_str_list,
    as_str_map,
    fail,
    parse_argv,
    parse_duration,
    parse_env_names,
    parse_size,
    parse_volumes,
)

# The Engine API takes CPUs as NanoCpus, an int64 of billionths.
_MAX_CPUS = 9_000_000_000

# ---- parsing: (TOML value, where for messages, the config's folder) -> value ----------


def _rootless(parse: Callable[[Any, str], Any]) -> Callable[[Any, str, Path], Any]:
    # Only volumes resolve paths against the config's folder.
    return lambda raw, where, root: parse(raw, where)


def _workdir(raw: Any, where: str, root: Path) -> str:
    value = as_str(raw, where, example='"/src"')
    if not value.startswith("/"):
        fail(where, f'"{value}" is not absolute', 'use a container path like "/src"')
    return value


def _user(raw: Any, where: str, root: Path) -> str:
    # user = 1000 is a natural thing to write, and docker takes the uid as text.
    return str(raw) if type(raw) is int else as_str(raw, where, example='"1000:1000"')


def _network(raw: Any, where: str, root: Path) -> str:
    return as_str(raw, where, example='"none"')


def _container_path(raw: Any, where: str, root: Path) -> str:
    value = as_str(raw, where, example='"/tmp/junit.xml"')
    if not value.startswith("/") or "\0" in value:
        fail(where, f'"{value}" is not an absolute container path', 'write e.g. "/tmp/junit.xml"')
    return value


def _container_paths(raw: Any, where: str, root: Path) -> tuple[str, ...]:
    paths = as_str_list(raw, where)
    for i, path in enumerate(paths, 1):
        _container_path(path, f"{where}[{i}]", root)
    return paths


def _artifacts_when(raw: Any, where: str, root: Path) -> str:
    value = as_str(raw, where, example='"failure"')
    if value not in ("failure", "always"):
        fail(
            where, f'"{value}" is not a choice', 'use "failure" (FAIL, TIMEOUT, ERROR) or "always"'
        )
    return value


def _cpus(raw: Any, where: str, root: Path) -> float:
    return float(as_positive(raw, where, (int, float), most=_MAX_CPUS))


# ---- merging: ([defaults]' value, the shard's) -> value --------------------------------


def _shard_wins(default: Any, own: Any) -> Any:
    # A shard's empty list (security-opt = []) inherits, as None does.
    return default if own is None or own == () else own


def _by_key(default: Mapping[str, str], own: Mapping[str, str]) -> Mapping[str, str]:
    return {**default, **own}


def _by_target(default: tuple[Volume, ...], own: tuple[Volume, ...]) -> tuple[Volume, ...]:
    # The engine refuses two mounts on one target, so the shard's replaces the default's.
    own_targets = {v.target for v in own}
    return tuple(v for v in default if v.target not in own_targets) + own


def _added(default: tuple[str, ...], own: tuple[str, ...]) -> tuple[str, ...]:
    # A shard needing one more token should not have to repeat the defaults' names.
    return tuple(dict.fromkeys(default + own))


# ---- {index} and {total}: (value, index, total) -> value -------------------------------


def _as_written(value: Any, index: int, total: int) -> Any:
    return value


def _each_filled(args: tuple[str, ...] | None, index: int, total: int) -> tuple[str, ...] | None:
    return None if args is None else tuple(fill(a, index, total) for a in args)


def _filled(value: str | None, index: int, total: int) -> str | None:
    return None if value is None else fill(value, index, total)


def _values_filled(env: Mapping[str, str], index: int, total: int) -> Mapping[str, str]:
    return {key: fill(value, index, total) for key, value in env.items()}


# ---- containers.create: (value, secret values) -> keyword arguments --------------------


def _no_keywords(value: Any, secrets: Mapping[str, str]) -> dict[str, Any]:
    return {}


def _keyword(
    name: str, convert: Callable[[Any], Any] | None = None
) -> Callable[[Any, Mapping[str, str]], dict[str, Any]]:
    """`name` = the converted value, left out when that is None so the image's applies."""

    def create(value: Any, secrets: Mapping[str, str]) -> dict[str, Any]:
        if value is not None and convert is not None:
            value = convert(value)
        return {} if value is None else {name: value}

    return create


def _list_or_none(items: tuple[str, ...]) -> list[str] | None:
    return list(items) or None


def _nano_cpus(cpus: float) -> int | None:
    return round(cpus * 1e9) if cpus else None


def _environment(env: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, Any]:
    return {"environment": dict(env)}  # docker-py wants a dict, not the read-only proxy


def _secret_environment(names: tuple[str, ...], secrets: Mapping[str, str]) -> dict[str, Any]:
    # The values exist only here, read from the host when the shard starts.
    return {"environment": {name: secrets[name] for name in names}}


def _volume_list(volumes: tuple[Volume, ...], secrets: Mapping[str, str]) -> dict[str, Any]:
    return {"volumes": [_volume_spec(v) for v in volumes]}


def _volume_spec(volume: Volume) -> str:
    return f"{volume.source}:{volume.target}:{'ro' if volume.read_only else 'rw'}"


# ---- docker run: value -> words (flags before the image, or arguments after it) --------


def _no_words(value: Any) -> list[str]:
    return []


def _flag(flag: str) -> Callable[[Any], list[str]]:
    return lambda value: [] if value is None else [flag, str(value)]


def _flag_each(flag: str, spell: Callable[[Any], str] = str) -> Callable[[Any], list[str]]:
    return lambda items: [word for item in items for word in (flag, spell(item))]


def _env_flags(env: Mapping[str, str]) -> list[str]:
    return [word for key, value in env.items() for word in ("--env", f"{key}={value}")]


def _entrypoint_flag(entrypoint: tuple[str, ...] | None) -> list[str]:
    # `docker run --entrypoint` takes the executable only; its arguments lead the command.
    return [] if entrypoint is None else ["--entrypoint", entrypoint[0]]


def _entrypoint_args(entrypoint: tuple[str, ...] | None) -> list[str]:
    return [] if entrypoint is None else list(entrypoint[1:])


def _command_args(command: tuple[str, ...] | None) -> list[str]:
    return [] if command is None else list(command)


# ---- the table -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOption:
    """One field of RunOptions; the shards.toml key is its name spelled with dashes."""

    name: str
    parse: Callable[[Any, str, Path], Any]
    merge: Callable[[Any, Any], Any] = _shard_wins
    fill: Callable[[Any, int, int], Any] = _as_written
    create: Callable[[Any, Mapping[str, str]], dict[str, Any]] = _no_keywords
    flags: Callable[[Any], list[str]] = _no_words
    args: Callable[[Any], list[str]] = _no_words

    @property
    def key(self) -> str:
        return self.name.replace("_", "-")


# In the order of `docker run`'s flags, then its arguments after the image, as repro has
# always printed them: --entrypoint last before the image, its arguments before the command.
OPTIONS: tuple[RunOption, ...] = (
    RunOption(
        "env",
        _rootless(as_str_map),
        merge=_by_key,
        fill=_values_filled,
        create=_environment,
        flags=_env_flags,
    ),
    # `--env NAME` with no value: the docker CLI reads it from its own environment, so the
    # secret never appears in an argv.
    RunOption(
        "secret_env",
        _rootless(parse_env_names),
        merge=_added,
        create=_secret_environment,
        flags=_flag_each("--env"),
    ),
    RunOption(
        "volumes",
        parse_volumes,
        merge=_by_target,
        create=_volume_list,
        flags=_flag_each("--volume", _volume_spec),
    ),
    RunOption("workdir", _workdir, create=_keyword("working_dir"), flags=_flag("--workdir")),
    RunOption("user", _user, create=_keyword("user"), flags=_flag("--user")),
    RunOption(
        "shm_size", _rootless(parse_size), create=_keyword("shm_size"), flags=_flag("--shm-size")
    ),
    RunOption("network", _network, create=_keyword("network_mode"), flags=_flag("--network")),
    RunOption("cpus", _cpus, create=_keyword("nano_cpus", _nano_cpus), flags=_flag("--cpus")),
    RunOption(
        "memory", _rootless(parse_size), create=_keyword("mem_limit"), flags=_flag("--memory")
    ),
    RunOption(
        "security_opt",
        _rootless(as_str_list),
        create=_keyword("security_opt", _list_or_none),
        flags=_flag_each("--security-opt"),
    ),
    RunOption(
        "entrypoint",
        _rootless(parse_argv),
        fill=_each_filled,
        create=_keyword("entrypoint", list),
        flags=_entrypoint_flag,
        args=_entrypoint_args,
    ),
    RunOption(
        "command",
        _rootless(parse_argv),
        fill=_each_filled,
        create=_keyword("command", list),
        args=_command_args,
    ),
    # shardrun's own deadline: docker has no such container option.
    RunOption("timeout", _rootless(parse_duration)),
    # Only permits a socket volume (plan.py checks); nothing to pass on.
    RunOption("docker_socket", _rootless(as_bool)),
    # Copied out of the container after it exits: nothing for the engine's create.
    RunOption("artifacts", _container_paths, merge=_added, fill=_each_filled),
    RunOption("artifacts_when", _artifacts_when),
    RunOption("artifacts_max", _rootless(parse_size)),
    RunOption("junit", _container_path, fill=_filled),
    # A pass on the same content may be reported instead of run again (plan/reuse_key.py):
    # shardrun's own, nothing for docker. expand.py notes a shard's own reuse = true apart.
    RunOption("reuse", _rootless(as_bool)),
)

BY_KEY: Mapping[str, RunOption] = {option.key: option for option in OPTIONS}
