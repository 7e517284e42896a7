"""What shardrun asks of a Docker engine: one interface, shardrun's own values and errors.

Everything Docker that shardrun does is a method here. The real implementation is
`docker_engine.DockerEngine` (docker-py); `fake.FakeEngine` holds state in memory with
scripted faults, so the run's own logic is tested without a daemon. Every method blocks:
callers run them in threads.

Errors, so a caller can tell "the worker is in trouble" from "this shard is wrong":
- `TransportError`: no answer, or the connection broke (refused, reset, timed out, an SSH
  channel closed), or the engine failed on its side (5xx).
- `EngineRefused`: the engine answered and said no (4xx: a bad mount, an unknown option,
  an image it does not accept).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

from shardrun.model.errors import EngineRefused, TransportError
from shardrun.model.shard import Shard

ENGINE_FAILURES = (TransportError, EngineRefused)


@dataclass(frozen=True)
class EngineFacts:
    version: str
    cpus: int
    containerd_store: bool = False  # images in containerd's store, not a graph driver

    @property
    def major_minor(self) -> tuple[int, int]:
        """(28, 0) for "28.0.1"; (0, 0) when the version cannot be read."""
        parts = self.version.split(".")
        try:
            return int(parts[0]), int(parts[1].split("-")[0] if len(parts) > 1 else 0)
        except ValueError:
            return 0, 0


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    state: str  # created, running, exited, dead, ...
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    name: str = ""
    created: float = 0.0  # epoch seconds


@dataclass(frozen=True)
class TaggedImage:
    tag: str  # a content tag, shardrun/image:<build ID>
    image_id: str  # the engine's own ID of the image it names
    size: int  # bytes


@dataclass(frozen=True)
class ContainerRequest:
    """One shard's container: its image, options, labels, and the values of its
    secret-env names (kept out of repr: they are written nowhere)."""

    image: str
    shard: Shard
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    secrets: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)


@dataclass(frozen=True)
class OutputStream:
    """A container's attached output: `read()` gives the next block of the engine's
    multiplexed stream (b"" at its end); `close()` drops the connection."""

    read: Callable[[], bytes]
    close: Callable[[], None]


class Engine(Protocol):
    def facts(self) -> EngineFacts: ...

    def ping(self, timeout: float) -> bool:
        """True if the engine answers within `timeout`; never raises."""
        ...

    # ---- images
    def build(self, context: IO[bytes], params: Mapping[str, str]) -> Iterator[dict]:
        """POST /build: the engine's JSON messages, as they come."""
        ...

    def has_image(self, image_id: str) -> bool: ...

    def image_id_of(self, ref: str) -> str | None:
        """The ID of the image `ref` (an ID, a short one, or a tag) names; None if none."""
        ...

    def find_image(self, image_id: str, diff_ids: Sequence[str] | None) -> str | None:
        """What to create containers of the image from: its ID where the engine knows it
        by that (a graph-driver store), else its content tag when that names an image of
        the same layers (`diff_ids`, unless None); None if the engine lacks it."""
        ...

    def tag(self, image_id: str, tag: str) -> None: ...

    def content_tags(self, project: str) -> list[TaggedImage]:
        """The content tags on this engine of the project's images (by their label)."""
        ...

    def untag(self, tag: str) -> None:
        """Remove the tag (and its image, if nothing else names it); gone is fine."""
        ...

    def image_size(self, image_id: str) -> int: ...

    def image_diff_ids(self, image_id: str) -> list[str]:
        """The image's layers (diff IDs), bottom first."""
        ...

    def image_inspect(self, image_id: str) -> Mapping:
        """The image's inspect: its `RootFS` layers and its run `Config` (what a result's
        reuse key takes of its content)."""
        ...

    def image_layers(self, project: str | None) -> list[list[str]]:
        """The RootFS layers (diff IDs) of the project's images, or (None) of all."""
        ...

    def save(self, name: str, chunk_size: int) -> Iterator[bytes]:
        """`docker save` of the image `name` (an ID, or a tag the archive then carries)."""
        ...

    def load(self, chunks: Iterable[bytes]) -> None:
        """Load a `docker save` tarball or an OCI layout; EngineRefused if the engine will
        not take it."""
        ...

    # ---- containers
    def create(self, request: ContainerRequest) -> str: ...

    def attach(self, container_id: str) -> OutputStream:
        """Before the start: all of the container's stdout and stderr."""
        ...

    def start(self, container_id: str) -> None: ...

    def wait(self, container_id: str) -> int:
        """Until the container exits; its exit code."""
        ...

    def kill(self, container_id: str) -> None:
        """Kill it if it runs; nothing if it has exited or is gone."""
        ...

    def rename(self, container_id: str, name: str) -> None: ...

    def copy_out(self, container_id: str, path: str, chunk_size: int) -> Iterator[bytes]:
        """A tar stream of `path` in the container (a file, or a folder with its
        contents, named from its base name); EngineRefused if there is no such path."""
        ...

    def remove(self, container_id: str) -> None:
        """Remove it with its anonymous volumes, whatever its state; gone is fine."""
        ...

    def containers(self, label: str) -> list[ContainerInfo]:
        """Every container (any state) that carries `label` (KEY or KEY=VALUE)."""
        ...

    def close(self) -> None: ...
