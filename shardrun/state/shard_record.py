"""A shard as a report records it (`options`, model/shard.py's to_json), read back from a
file that may come from another machine: a CI run's folder given to `repro --run FOLDER`,
a partition's report in a merge, a past run for `run --failed`.

Such a record is checked as shards.toml is, through the same parsers (model/options.py),
and may not decide what the container reaches outside itself on this host: `on_this_host`
takes that from this machine's config.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TypeGuard

from shardrun.model.errors import ConfigError
from shardrun.model.options import OPTIONS
from shardrun.model.shard import Shard
from shardrun.state.foreign import Refused, relative_name

# A name as shards.toml allows it once {index} and {total} are filled (config/load.py):
# it becomes a log file's name and a label, so no "/", no "..", no control character.
NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_FILES_MAX = 100_000  # files of one split group: a whole large suite, with room to spare
# What a container reaches outside itself besides its image and its own process: the
# host's files (binds), its engine (the Docker socket), its kernel's guards, its network.
HOST_OPTIONS = ("volumes", "docker_socket", "security_opt", "network")


def is_name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(NAME.fullmatch(value)) and bool(value.strip("."))


def from_json(data: object) -> Shard:
    """The shard `to_json` recorded, each option parsed as in shards.toml, its name one a
    config can give, its files relative paths, and a Docker socket mount only with its
    own docker-socket (as a config needs). Refused (a ValueError), one phrase, if it is
    not one."""
    if not isinstance(data, dict):
        raise Refused("not a recorded shard: not an object")
    name = data.get("name")
    if not is_name(name):
        raise Refused(f"not a recorded shard: {_shown(name)} is not a shard name")
    values = {}
    try:
        for option in OPTIONS:
            raw = data.get(option.name)
            if raw is None:
                continue  # unset, or an option newer than the record: its default
            if option.name == "volumes":
                raw = [_volume_text(v) for v in _items(raw)]
            where = f'shard "{name}": options.{option.name}'
            values[option.name] = option.parse(raw, where, Path("/"))
        files = _items(data.get("files") or [])
        if len(files) > _FILES_MAX:
            raise Refused(f"{len(files)} files, over {_FILES_MAX}")
        shard = Shard(name=name, files=tuple(str(relative_name(f)) for f in files), **values)
    except (ConfigError, ValueError) as exc:  # Refused is a ValueError
        raise Refused(f"not a recorded shard: {exc}") from None
    if not shard.docker_socket and any(v.gives_engine for v in shard.volumes):
        raise Refused(
            f'not a recorded shard: "{name}" mounts the Docker socket without docker-socket'
        )
    return shard


def on_this_host(recorded: Shard, config: Shard | None) -> Shard:
    """`recorded` as it may run here. What runs inside the container stays as recorded
    (command, entrypoint, env, files, limits: `repro` reruns exactly that); what reaches
    outside it (HOST_OPTIONS) is this machine's config's shard of that name (`config`),
    or none of it when the config has no such shard. So a report, which anyone can edit
    and a CI artifact carries, grants no mount, Docker socket, security option or network
    the config does not; and a bind source recorded on a CI machine means nothing here."""
    host = config if config is not None else Shard(name=recorded.name)
    return replace(recorded, name=host.name, **{key: getattr(host, key) for key in HOST_OPTIONS})


def _items(value: object) -> list:
    if not isinstance(value, list):
        raise Refused(f"expected a list, got {_shown(value)}")
    return value


def _volume_text(value: object) -> str:
    """A recorded volume spelled as shards.toml spells one, for the same parser."""
    if not isinstance(value, dict):
        raise Refused(f"a volume is {_shown(value)}, not an object")
    source, target, read_only = value.get("source"), value.get("target"), value.get("read_only")
    if not (isinstance(source, str) and isinstance(target, str) and isinstance(read_only, bool)):
        raise Refused(f"a volume is {_shown(value)}, not a source, target and read_only")
    return f"{source}:{target}:{'ro' if read_only else 'rw'}"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
