"""A shard's run options and the shard itself: one container to run, as the plan makes it
and the engine creates it. Pure values."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType


def frozen_map(items: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class Volume:
    source: str
    target: str
    read_only: bool = False

    @property
    def is_bind(self) -> bool:
        # Bind sources are made absolute while parsing; a named volume cannot start with "/".
        return self.source.startswith("/")

    @property
    def gives_engine(self) -> bool:
        """A bind of the Docker engine's socket: whoever holds it is root on the host. The
        name covers /var/run/docker.sock, rootless $XDG_RUNTIME_DIR/docker.sock and Docker
        Desktop's ~/.docker/run/docker.sock; a named volume "docker.sock" is no socket."""
        return self.is_bind and posixpath.basename(self.source) == "docker.sock"


@dataclass(frozen=True)
class RunOptions:
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    # Mappings are read-only proxies, left out of the hash because a dict has none.
    env: Mapping[str, str] = field(default_factory=frozen_map, hash=False)
    volumes: tuple[Volume, ...] = ()
    workdir: str | None = None
    user: str | None = None
    shm_size: int | None = None
    security_opt: tuple[str, ...] = ()
    network: str | None = None
    cpus: float | None = None
    memory: int | None = None
    timeout: float | None = None
    # Names only: the values come from the runner's environment when a shard starts (not
    # here, config stays pure), so a token never has to be written into shards.toml.
    secret_env: tuple[str, ...] = ()
    # None means false; kept apart so a shard's false can override a default's true.
    docker_socket: bool | None = None
    # Paths (globs allowed) in the container, copied out after it exits (run/collect.py).
    artifacts: tuple[str, ...] = ()
    artifacts_when: str | None = None  # "failure" (None: the default) or "always"
    artifacts_max: int | None = None  # bytes per shard; None: ARTIFACTS_MAX
    junit: str | None = None  # the shard's own JUnit file in the container, always copied
    # A pass on the same content may be reported instead of run again (plan/reuse_key.py).
    # None means false, kept apart, as docker_socket is, so a shard's false overrides a
    # default's true.
    reuse: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", frozen_map(self.env))


def fill(text: str, index: int, total: int) -> str:
    """Substitute {index} and {total}. Not str.format: commands often hold other braces."""
    return text.replace("{index}", str(index)).replace("{total}", str(total))


@dataclass(frozen=True)
class Shard(RunOptions):
    """One container to run: defaults merged with the shard's overrides, placeholders
    filled. `command` None means the image's CMD. `files`: its group of a `split`."""

    name: str = field(kw_only=True)
    files: tuple[str, ...] = field(default=(), kw_only=True)
    # Its own [[shard]] table said reuse = true, not just [defaults]: what a shard that
    # reads inputs the reuse key cannot see (a host path, the engine) needs to be reused.
    # Not recorded by to_json: a report cannot grant it.
    reuse_own: bool = field(default=False, kw_only=True)


def to_json(shard: Shard) -> dict:
    """The shard's name and run options as JSON values, as report.json records them so
    that `repro` can run exactly what ran."""
    data = {"name": shard.name, "files": list(shard.files)}
    for f in fields(RunOptions):
        value = getattr(shard, f.name)
        if f.name == "volumes":
            value = [
                {"source": v.source, "target": v.target, "read_only": v.read_only} for v in value
            ]
        elif isinstance(value, tuple):
            value = list(value)
        elif f.name == "env":
            value = dict(value)
        data[f.name] = value
    return data
