"""An in-memory engine for tests: the whole `Engine` interface, scripted, and recorded.

Like pytest-xdist's recording `MockNode`: the run's real logic (distribute, schedule,
execute, the workflow) drives it as it would drive docker, and the test reads back what
was asked (`calls`) and what the engine holds (`images`, `present`, `history`).

What a test scripts:
- a shard's container (`script`): its exit code, its output (sent as the engine's
  multiplexed attach stream) and how many seconds of real time it runs, or forever until
  it is killed or removed (killed means exit 137, as SIGKILL gives);
- faults (`fail`): a method, or its Nth call, or the calls a predicate picks, raises
  TransportError or EngineRefused;
- a slow method (`delay`), e.g. a load that takes a while;
- a dead daemon (`stop_answering`): every later call raises TransportError, calls under
  way (a wait, an attach stream) break off the same way, and `ping` says False;
- a host cut off from the network (`hang`): calls block, waits and streams stop
  reporting, and `ping` answers False after its timeout, until `release`.

Images are real `docker save` tarballs in miniature (`FakeImage`): shardrun checks a saved
tarball against its image ID and reads its manifest before sending it, so an opaque blob
would not get through; the layers themselves are whatever bytes the test gives. `load`
reads such a tarball back, thin ones too (a layer file may be left out if the engine
holds that prefix of layers, as dockerd allows).

Pure Python: no docker import. Every method may be called from many threads at once
(anyio.to_thread); one Condition guards all state and wakes every blocked call.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from shardrun.distribute.artifact.layers import read_manifest
from shardrun.engine.api import (
    ContainerInfo,
    ContainerRequest,
    Engine,
    EngineFacts,
    OutputStream,
    TaggedImage,
)
from shardrun.model.errors import EngineRefused, TransportError
from shardrun.model.image_ref import CONTENT_REPO, chain_ids
from shardrun.model.owner import LABEL_PROJECT

_METHODS = frozenset(
    name for name in vars(Engine) if not name.startswith("_") and callable(vars(Engine)[name])
)
KILLED = 137  # 128 + SIGKILL: what a killed (or force-removed) container exits with
_FRAME = struct.Struct(">BxxxL")  # the attach stream's header: stream, payload size


def frame(payload: bytes, stream: int = 1) -> bytes:
    """One frame of the multiplexed stream of a non-TTY container (1 stdout, 2 stderr)."""
    return _FRAME.pack(stream, len(payload)) + payload


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- images --------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeImage:
    """An image as `docker save` writes it: a config blob (whose sha256 is the image ID)
    and layer files (whose sha256 are the diff IDs)."""

    config: bytes
    layers: tuple[bytes, ...]

    @classmethod
    def make(cls, *layers: bytes, labels: Mapping[str, str] | None = None) -> FakeImage:
        layers = layers or (b"base layer", b"test layer")
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": dict(labels or {})},
            "rootfs": {"type": "layers", "diff_ids": [_sha(layer) for layer in layers]},
        }
        return cls(json.dumps(config, sort_keys=True).encode(), tuple(layers))

    @property
    def id(self) -> str:
        return _sha(self.config)

    @property
    def diff_ids(self) -> list[str]:
        return list(json.loads(self.config)["rootfs"]["diff_ids"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(json.loads(self.config).get("config", {}).get("Labels") or {})

    def tarball(self, tags: Sequence[str] = ()) -> bytes:
        """The `docker save` tarball: <sha>/layer.tar per layer, <id>.json, manifest.json
        (naming `tags`, as a save by tag does). The same image always gives the same
        bytes."""
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
            paths: list[str] = []
            for layer in self.layers:
                path = f"{hashlib.sha256(layer).hexdigest()}/layer.tar"
                if path not in paths:  # docker save too writes an equal layer once
                    _add(tar, path, layer)
                paths.append(path)
            config_name = f"{self.id.removeprefix('sha256:')}.json"
            _add(tar, config_name, self.config)
            manifest = [{"Config": config_name, "RepoTags": list(tags) or None, "Layers": paths}]
            _add(tar, "manifest.json", json.dumps(manifest).encode())
        return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _read_tarball(
    data: bytes, held: Mapping[str, bytes], held_chains: set[str]
) -> tuple[FakeImage, list[str]]:
    """The image in a (possibly thin) save tarball, as dockerd's load takes it, and the
    tags it names."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = set(tar.getnames())
            manifest = read_manifest(tar)
            entry, config, diff_ids = manifest.entry, manifest.config, manifest.diff_ids
            files = {p: tar.extractfile(p).read() for p in entry["Layers"] if p in names}
            tags = list(entry.get("RepoTags") or [])
    except (tarfile.TarError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise EngineRefused(f"load failed: not a docker save tarball ({exc!r})") from exc
    if len(diff_ids) != len(entry["Layers"]):
        raise EngineRefused("load failed: the manifest and the config disagree on the layers")
    layers = []
    for path, diff_id, chain in zip(entry["Layers"], diff_ids, chain_ids(diff_ids), strict=True):
        if path in files:
            if _sha(files[path]) != diff_id:
                raise EngineRefused(f"load failed: layer {path} does not match {diff_id}")
            layers.append(files[path])
        elif chain in held_chains:  # a thin tarball: this prefix is here already
            layers.append(held[diff_id])
        else:
            raise EngineRefused(f"load failed: {path} is missing and layer {diff_id} is not held")
    return FakeImage(config, tuple(layers)), tags


# ---- containers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """How a container behaves once started.

    `output` is one payload or several, each sent as one frame; `seconds` None runs until
    killed or removed. `files` are the container's files by path, for `copy_out`. By default each frame comes in a read of its own, all at the
    start; `read_size` cuts the framed stream into reads of that many bytes instead (a
    secret or a frame split between two reads), and `pace` spaces the reads that many
    seconds apart (a shard that prints as it goes).
    """

    exit_code: int = 0
    output: bytes | Sequence[bytes] = b""
    seconds: float | None = 0.0
    read_size: int | None = None
    stream: int = 1
    pace: float = 0.0
    files: Mapping[str, bytes] = field(default_factory=dict)  # what copy_out finds

    def blocks(self) -> list[bytes]:
        payloads = [self.output] if isinstance(self.output, bytes) else list(self.output)
        frames = [frame(p, self.stream) for p in payloads if p]
        if self.read_size is None:
            return frames
        data = b"".join(frames)
        return [data[i : i + self.read_size] for i in range(0, len(data), self.read_size)]


@dataclass
class FakeContainer:
    id: str
    request: ContainerRequest
    labels: dict[str, str]
    script: Script
    name: str = ""
    state: str = "created"  # created, running, exited, removed
    exit_code: int | None = None
    killed: bool = False
    started_at: float | None = None
    ends_at: float | None = None
    created: float = field(default_factory=time.time)

    @property
    def shard(self) -> str:
        return self.request.shard.name


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass
class _Fault:
    method: str
    error: type[Exception] | Exception
    nth: int | None
    when: Callable[..., bool] | None

    def matches(self, method: str, n: int, args: tuple) -> bool:
        return (
            method == self.method
            and (self.nth is None or self.nth == n)
            and (self.when is None or bool(self.when(*args)))
        )

    def make(self, engine: str) -> Exception:
        if isinstance(self.error, Exception):
            return self.error
        return self.error(f"fake engine {engine}: {self.method} failed (scripted)")


@dataclass
class _Stream:
    blocks: list[bytes] = field(default_factory=list)
    closed: bool = False
    next_at: float = 0.0  # when the next block may be read (Script.pace)


class FakeEngine:
    """The `Engine` interface in memory. See the module's docstring for what to script."""

    def __init__(
        self,
        name: str = "fake",
        *,
        images: Iterable[FakeImage] = (),
        built: FakeImage | None = None,
        cpus: int = 4,
        version: str = "27.0.0-fake",
    ) -> None:
        self.name, self.cpus, self.version, self.built = name, cpus, version, built
        self.images: dict[str, FakeImage] = {image.id: image for image in images}
        self.tags: dict[str, str] = {}  # tag -> image ID
        self.present: dict[str, FakeContainer] = {}  # the containers the engine has now
        self.history: list[FakeContainer] = []  # every container ever created, in order
        self.calls: list[Call] = []
        self.loads: list[bytes] = []  # every tarball sent to `load`, whether taken or not
        self.closed = False
        self._cond = threading.Condition()
        self._scripts: dict[str, Script] = {}
        self._faults: list[_Fault] = []
        self._delays: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._dead = False
        self._hung = False

    def __repr__(self) -> str:
        return f"FakeEngine({self.name!r})"

    # ---- scripting -----------------------------------------------------------------

    def script(
        self,
        shard: str = "*",
        *,
        exit_code: int = 0,
        output: bytes | Sequence[bytes] = b"",
        seconds: float | None = 0.0,
        read_size: int | None = None,
        stream: int = 1,
        pace: float = 0.0,
        files: Mapping[str, bytes] | None = None,
    ) -> FakeEngine:
        """How the containers of `shard` ("*": of every shard not scripted) behave: see
        `Script`."""
        with self._cond:
            self._scripts[shard] = Script(
                exit_code, output, seconds, read_size, stream, pace, dict(files or {})
            )
        return self

    def fail(
        self,
        method: str,
        error: type[Exception] | Exception = TransportError,
        *,
        nth: int | None = None,
        when: Callable[..., bool] | None = None,
    ) -> FakeEngine:
        """Make `method` raise `error` (a class gets a message naming the call): on every
        call, or only on its `nth` call (1 is the first on this engine), or on the calls
        whose arguments `when(*args)` accepts. The call is recorded all the same. A
        `ping` never raises: a fault there makes it answer False."""
        if method not in _METHODS:
            raise ValueError(f"{method!r} is not a method of the Engine interface")
        with self._cond:
            self._faults.append(_Fault(method, error, nth, when))
        return self

    def delay(self, method: str, seconds: float) -> FakeEngine:
        """Every later call of `method` takes `seconds` longer (ended early by
        `stop_answering`, which it then raises for)."""
        if method not in _METHODS:
            raise ValueError(f"{method!r} is not a method of the Engine interface")
        with self._cond:
            self._delays[method] = seconds
        return self

    def stop_answering(self) -> None:
        """The daemon is dead: every call from now on raises TransportError, the calls
        under way (waits, streams, delays, hangs) break off with it, pings say False."""
        with self._cond:
            self._dead = True
            self._cond.notify_all()

    def hang(self) -> None:
        """The host is cut off: calls block, and waits and streams stop reporting, until
        `release` (or `stop_answering`); a ping answers False after its timeout."""
        with self._cond:
            self._hung = True
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._hung = False
            self._cond.notify_all()

    def add_image(self, image: FakeImage) -> None:
        with self._cond:
            self.images[image.id] = image

    # ---- reading back --------------------------------------------------------------

    def called(self, name: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.name == name]

    def running(self) -> list[FakeContainer]:
        with self._cond:
            self._refresh()
            return [c for c in self.present.values() if c.state == "running"]

    def started_shards(self) -> list[str]:
        """The shards whose container was started here, in the order they started."""
        with self._cond:
            started = [c for c in self.history if c.started_at is not None]
            return [c.shard for c in sorted(started, key=lambda c: c.started_at)]

    # ---- the gate every call goes through ------------------------------------------

    def _enter(self, method: str, *args: Any) -> None:
        """Record the call, then: block while hung, raise if dead, take the delay, raise
        a scripted fault. Holds no lock on return."""
        with self._cond:
            self.calls.append(Call(method, args))
            n = self._counts[method] = self._counts.get(method, 0) + 1
            self._cond.wait_for(lambda: not self._hung or self._dead)
            self._check_alive(method)
            if delay := self._delays.get(method):
                self._cond.wait_for(lambda: self._dead, timeout=delay)
                self._check_alive(method)
            for fault in self._faults:
                if fault.matches(method, n, args):
                    raise fault.make(self.name)

    def _check_alive(self, method: str) -> None:
        if self._dead:
            raise TransportError(f"fake engine {self.name}: {method}: connection refused")

    def _refresh(self) -> None:
        """Containers whose run time is up have exited (time passes between calls)."""
        now = time.monotonic()
        for container in self.present.values():
            if (
                container.state == "running"
                and container.ends_at is not None
                and now >= container.ends_at
            ):
                container.state = "exited"
                container.exit_code = container.script.exit_code
                self._cond.notify_all()

    def _sleep_until_change(self, until: float | None = None) -> None:
        """Wait for a notify, the next scripted exit or `until`, whichever comes first."""
        ends = [
            c.ends_at
            for c in self.present.values()
            if c.state == "running" and c.ends_at is not None
        ]
        if until is not None:
            ends.append(until)
        timeout = max(min(ends) - time.monotonic(), 0.0) + 0.001 if ends else None
        self._cond.wait(timeout)

    def _container(self, container_id: str, method: str) -> FakeContainer:
        container = self.present.get(container_id)
        if container is None:
            raise EngineRefused(
                f"fake engine {self.name}: {method}: no such container: {container_id}"
            )
        return container

    # ---- the Engine interface --------------------------------------------------------

    def facts(self) -> EngineFacts:
        self._enter("facts")
        return EngineFacts(version=self.version, cpus=self.cpus)

    def ping(self, timeout: float) -> bool:
        with self._cond:
            self.calls.append(Call("ping", (timeout,)))
            n = self._counts["ping"] = self._counts.get("ping", 0) + 1
            answered = self._cond.wait_for(lambda: not self._hung or self._dead, timeout)
            if not answered or self._dead:
                return False
            return not any(f.matches("ping", n, (timeout,)) for f in self._faults)

    def build(self, context: IO[bytes], params: Mapping[str, str]) -> Iterator[dict]:
        self._enter("build", context, dict(params))
        context.read()  # the engine reads the whole context before it answers
        if self.built is None:
            raise EngineRefused(f"fake engine {self.name}: no image scripted to build")
        self.add_image(self.built)
        return iter(
            [
                {"stream": "Successfully built (fake)\n"},
                {"id": "moby.image.id", "aux": {"ID": self.built.id}},
            ]
        )

    def has_image(self, image_id: str) -> bool:
        self._enter("has_image", image_id)
        with self._cond:
            return image_id in self.images

    def image_id_of(self, ref: str) -> str | None:
        self._enter("image_id_of", ref)
        with self._cond:
            return ref if ref in self.images else self.tags.get(ref)

    def find_image(self, image_id: str, diff_ids: Sequence[str] | None) -> str | None:
        self._enter("find_image", image_id, diff_ids)
        with self._cond:
            if image_id in self.images:
                return image_id
        return None

    def tag(self, image_id: str, tag: str) -> None:
        self._enter("tag", image_id, tag)
        self._image(image_id)
        with self._cond:
            self.tags[tag] = image_id

    def untag(self, tag: str) -> None:
        self._enter("untag", tag)
        with self._cond:
            self.tags.pop(tag, None)

    def image_size(self, image_id: str) -> int:
        self._enter("image_size", image_id)
        return len(self._image(image_id).tarball())

    def image_diff_ids(self, image_id: str) -> list[str]:
        self._enter("image_diff_ids", image_id)
        return self._image(image_id).diff_ids

    def image_inspect(self, image_id: str) -> dict:
        self._enter("image_inspect", image_id)
        config = json.loads(self._image(image_id).config)
        layers = config["rootfs"]["diff_ids"]
        return {"Id": image_id, "RootFS": {"Layers": layers}, "Config": config.get("config")}

    def content_tags(self, project: str) -> list[TaggedImage]:
        self._enter("content_tags", project)
        with self._cond:
            return [
                TaggedImage(tag, image_id, len(b"".join(self.images[image_id].layers)))
                for tag, image_id in self.tags.items()
                if tag.startswith(f"{CONTENT_REPO}:")
                and image_id in self.images
                and self.images[image_id].labels.get(LABEL_PROJECT) == project
            ]

    def image_layers(self, project: str | None) -> list[list[str]]:
        self._enter("image_layers", project)
        with self._cond:
            return [
                image.diff_ids
                for image in self.images.values()
                if project is None or image.labels.get(LABEL_PROJECT) == project
            ]

    def save(self, name: str, chunk_size: int) -> Iterator[bytes]:
        self._enter("save", name, chunk_size)
        with self._cond:
            tagged = name in self.tags
            image_id = self.tags.get(name, name)
        data = self._image(image_id).tarball([name] if tagged else [])
        return iter([data[i : i + chunk_size] for i in range(0, len(data), chunk_size)])

    def _image(self, image_id: str) -> FakeImage:
        with self._cond:
            image = self.images.get(image_id)
        if image is None:
            raise EngineRefused(f"fake engine {self.name}: no such image: {image_id}")
        return image

    def load(self, chunks: Iterable[bytes]) -> None:
        self._enter("load", chunks)
        data = _as_dockerd_reads(b"".join(chunks))
        with self._cond:
            self._check_alive("load")
            self.loads.append(data)
            held = {
                d: layer
                for image in self.images.values()
                for d, layer in zip(image.diff_ids, image.layers, strict=True)
            }
            chains = {c for image in self.images.values() for c in chain_ids(image.diff_ids)}
            image, tags = _read_tarball(data, held, chains)
            self.images[image.id] = image
            self.tags.update(dict.fromkeys(tags, image.id))

    def create(self, request: ContainerRequest) -> str:
        self._enter("create", request)
        with self._cond:
            script = self._scripts.get(request.shard.name) or self._scripts.get("*") or Script()
            container_id = hashlib.sha256(
                f"{self.name} {len(self.history)} {request.shard.name}".encode()
            ).hexdigest()
            container = FakeContainer(container_id, request, dict(request.labels), script)
            self.present[container_id] = container
            self.history.append(container)
            return container_id

    def attach(self, container_id: str) -> OutputStream:
        self._enter("attach", container_id)
        with self._cond:
            container = self._container(container_id, "attach")
            stream = _Stream(container.script.blocks())
            pace = container.script.pace

        def read() -> bytes:
            with self._cond:
                while True:
                    self._check_alive("reading the attach stream")
                    self._refresh()
                    gone = self.present.get(container_id) is None
                    state = "removed" if gone else self.present[container_id].state
                    if stream.closed:
                        return b""
                    now = time.monotonic()
                    if not self._hung and state != "created":
                        if stream.blocks and now >= stream.next_at:
                            stream.next_at = now + pace
                            return stream.blocks.pop(0)
                        if state in ("exited", "removed"):
                            return b""  # output not yet sent is lost with the container
                    self._sleep_until_change(stream.next_at if stream.blocks else None)

        def close() -> None:
            with self._cond:
                stream.closed = True
                self._cond.notify_all()

        return OutputStream(read=read, close=close)

    def start(self, container_id: str) -> None:
        self._enter("start", container_id)
        with self._cond:
            container = self._container(container_id, "start")
            if container.state != "created":
                return  # running: the engine's 304; exited: not restarted here
            container.state = "running"
            container.started_at = time.monotonic()
            seconds = container.script.seconds
            container.ends_at = None if seconds is None else container.started_at + seconds
            self._cond.notify_all()

    def wait(self, container_id: str) -> int:
        self._enter("wait", container_id)
        with self._cond:
            container = self._container(container_id, "wait")
            while True:
                self._check_alive("wait")
                self._refresh()
                if not self._hung and container.state in ("exited", "removed"):
                    return KILLED if container.exit_code is None else container.exit_code
                self._sleep_until_change()

    def kill(self, container_id: str) -> None:
        self._enter("kill", container_id)
        with self._cond:
            self._refresh()
            container = self.present.get(container_id)
            if container is not None and container.state == "running":
                container.state, container.exit_code, container.killed = "exited", KILLED, True
                self._cond.notify_all()

    def rename(self, container_id: str, name: str) -> None:
        self._enter("rename", container_id, name)
        with self._cond:
            self._container(container_id, "rename").name = name

    def copy_out(self, container_id: str, path: str, chunk_size: int) -> Iterator[bytes]:
        """As the engine's archive endpoint: members named from the base name of `path`."""
        self._enter("copy_out", container_id, path, chunk_size)
        with self._cond:
            files = dict(self._container(container_id, "copy_out").script.files)
        path = path.rstrip("/") or "/"
        inside = {p: data for p, data in files.items() if p == path or p.startswith(path + "/")}
        if not inside:
            raise EngineRefused(f"fake engine {self.name}: no such path: {path}")
        parent = path.rsplit("/", 1)[0]
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name, data in sorted(inside.items()):
                _add(tar, name[len(parent) :].lstrip("/"), data)
        data = out.getvalue()
        return iter([data[i : i + chunk_size] for i in range(0, len(data), chunk_size)])

    def remove(self, container_id: str) -> None:
        self._enter("remove", container_id)
        with self._cond:
            self._refresh()
            container = self.present.pop(container_id, None)
            if container is None:
                return  # gone is fine
            if container.state == "running":  # a forced removal kills it
                container.exit_code, container.killed = KILLED, True
            container.state = "removed"
            self._cond.notify_all()

    def containers(self, label: str) -> list[ContainerInfo]:
        self._enter("containers", label)
        key, has_value, value = label.partition("=")
        with self._cond:
            self._refresh()
            return [
                ContainerInfo(c.id, c.state, dict(c.labels), c.name, c.created)
                for c in self.present.values()
                if key in c.labels and (not has_value or c.labels[key] == value)
            ]

    def close(self) -> None:
        self.calls.append(Call("close", ()))
        self.closed = True


def _as_dockerd_reads(data: bytes) -> bytes:
    """A load's body as dockerd reads it: a gzip one decompressed (every engine does),
    a zstd one refused (this fake is a graph-driver engine, as dockerd 20.10)."""
    if data.startswith(b"\x1f\x8b"):
        import gzip

        return gzip.decompress(data)
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        raise EngineRefused("load failed: archive/tar: invalid tar header")
    return data
