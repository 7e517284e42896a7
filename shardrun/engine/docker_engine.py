"""The real engine: docker-py, with every failure turned into shardrun's own errors.

A few calls go below docker-py's public API on purpose, each for a reason the public one
cannot meet: BuildKit builds (`APIClient.build` has no BuildKit switch), loads that must
raise on a refused tarball (`load_image` does not), the attach stream read in large blocks
(docker-py polls and reads each frame separately: 60 s for 200 MB), and the ping with its
own timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

import docker
import requests
from docker.models.containers import _create_container_args

from shardrun.engine.api import (
    ContainerInfo,
    ContainerRequest,
    EngineFacts,
    OutputStream,
    TaggedImage,
)
from shardrun.model.errors import EngineRefused, TransportError
from shardrun.model.image_ref import CONTENT_REPO, content_tag
from shardrun.model.options import OPTIONS
from shardrun.model.shard import Shard

_READ = 1 << 18  # bytes per read of an attach stream: many frames at once


def _ssh_errors() -> tuple[type[BaseException], ...]:
    # paramiko is imported for ssh:// workers alone; until it is, none of its errors occur.
    ssh = sys.modules.get("paramiko.ssh_exception")
    return (ssh.SSHException,) if ssh is not None else ()


def _explain(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[-1][:300]


@contextlib.contextmanager
def translated(what: str, answered_is_refused: bool = False) -> Iterator[None]:
    """docker-py's, requests' and paramiko's errors as TransportError or EngineRefused.

    An error status is a refusal when it is a 4xx, or for any status with
    `answered_is_refused` (a load: the engine answers 500 for a tarball it will not take).
    """
    try:
        yield
    except docker.errors.APIError as exc:
        status = exc.status_code or 0
        refused = answered_is_refused or 400 <= status < 500
        kind = EngineRefused if refused else TransportError
        raise kind(f"{what}: {_explain(exc)}") from exc
    except (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        ConnectionError,
        TimeoutError,
        *_ssh_errors(),
    ) as exc:
        raise TransportError(f"{what}: {_explain(exc)}") from exc
    except OSError as exc:
        # A socket error that is not a ConnectionError (EPIPE on some paths, ENOTCONN).
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise TransportError(f"{what}: {_explain(exc)}") from exc


def container_options(
    shard: Shard, image_id: str, labels: Mapping[str, str], secrets: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments for docker-py's `containers.create`: the shard's options.

    `secrets` holds the values of the shard's `secret-env` names, read from the host's
    environment at run time; they go to the engine and nowhere else.
    """
    options: dict[str, Any] = {"image": image_id, "labels": dict(labels), "detach": True}
    for option in OPTIONS:
        for keyword, value in option.create(getattr(shard, option.name), secrets or {}).items():
            # env and secret-env both give "environment": add to it, not replace it.
            options[keyword] = {**options[keyword], **value} if keyword in options else value
    return options


class DockerEngine:
    """One engine through one docker-py client (its connection pool is the caller's
    choice: see endpoints.connect)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.api = client.api

    def facts(self) -> EngineFacts:
        with translated("reading the engine's facts"):
            info = self.client.info()
        return EngineFacts(
            version=str(info.get("ServerVersion", "?")),
            cpus=int(info.get("NCPU") or 1),
            containerd_store=_uses_containerd_store(info),
        )

    def ping(self, timeout: float) -> bool:
        try:
            return bool(self.api._get(self.api._url("/_ping"), timeout=timeout).ok)
        except Exception:  # noqa: BLE001 - any failure to answer is "no"
            return False

    # ---- images -----------------------------------------------------------------------

    def build(self, context: IO[bytes], params: Mapping[str, str]) -> Iterator[dict]:
        with translated("the engine refused the build"):
            response = self.api._post(
                self.api._url("/build"),
                params=dict(params),
                data=context,
                headers={"Content-Type": "application/x-tar"},
                stream=True,
                timeout=None,  # a quiet RUN step can take longer than any read timeout
            )
            self.api._raise_for_status(response)
            yield from self.api._stream_helper(response, decode=True)

    def has_image(self, image_id: str) -> bool:
        return self._inspect(image_id) is not None

    def image_id_of(self, ref: str) -> str | None:
        attrs = self._inspect(ref)
        return str(attrs["Id"]) if attrs is not None else None

    def find_image(self, image_id: str, diff_ids: Sequence[str] | None) -> str | None:
        for ref in (image_id, content_tag(image_id)):
            attrs = self._inspect(ref)
            if attrs is not None and (
                diff_ids is None or (attrs.get("RootFS") or {}).get("Layers") == list(diff_ids)
            ):
                return ref
        return None

    def _inspect(self, ref: str) -> dict | None:
        try:
            with translated(f"looking for image {ref[:70]}"):
                return self.api.inspect_image(ref)
        except EngineRefused as exc:
            if isinstance(exc.__cause__, docker.errors.NotFound):
                return None
            raise

    def tag(self, image_id: str, tag: str) -> None:
        repository, _, name = tag.rpartition(":")
        with translated(f"tagging image {image_id[:19]}"):
            self.api.tag(image_id, repository, name)

    def untag(self, tag: str) -> None:
        try:
            with translated(f"removing tag {tag[:70]}"):
                self.api.remove_image(tag)
        except EngineRefused as exc:
            if not isinstance(exc.__cause__, docker.errors.NotFound):
                raise

    def image_size(self, image_id: str) -> int:
        with translated(f"inspecting image {image_id[:19]}"):
            return int(self.api.inspect_image(image_id)["Size"])

    def image_diff_ids(self, image_id: str) -> list[str]:
        with translated(f"inspecting image {image_id[:19]}"):
            return list(self.api.inspect_image(image_id)["RootFS"].get("Layers") or [])

    def image_inspect(self, image_id: str) -> Mapping:
        with translated(f"inspecting image {image_id[:19]}"):
            return self.api.inspect_image(image_id)

    def image_layers(self, project: str | None) -> list[list[str]]:
        # images.list() inspects every image for RootFS (~3 ms an image): the project's own
        # images are the quick first look.
        filters = {"label": f"shardrun.project={project}"} if project else None
        with translated("listing images"):
            images = self.client.images.list(all=project is None, filters=filters)
        return [list(i.attrs.get("RootFS", {}).get("Layers") or []) for i in images]

    def save(self, name: str, chunk_size: int) -> Iterator[bytes]:
        with translated(f"saving image {name[:70]}"):
            yield from self.api.get_image(name, chunk_size=chunk_size)

    def load(self, chunks: Iterable[bytes]) -> None:
        with translated("loading the image", answered_is_refused=True):
            response = self.api._post(  # not load_image(): it does not raise on HTTP errors
                self.api._url("/images/load"),
                data=chunks,
                params={"quiet": "1"},
                stream=True,
                timeout=None,  # a big image can take longer than any read timeout to load
            )
            self.api._raise_for_status(response)
            messages = list(self.api._stream_helper(response, decode=True))
        for message in messages:
            if "errorDetail" in message or "error" in message:
                detail = (message.get("errorDetail") or {}).get("message") or message.get("error")
                raise EngineRefused(f"load failed: {detail}")

    # ---- containers -------------------------------------------------------------------

    def create(self, request: ContainerRequest) -> str:
        options = container_options(request.shard, request.image, request.labels, request.secrets)
        args = _create_container_args({**options, "version": self.api._version})
        # The low-level call: the high-level create inspects the new container, a round
        # trip on every shard's critical path that tells us nothing.
        with translated("could not create the container"):
            return self.api.create_container(**args)["Id"]

    def attach(self, container_id: str) -> OutputStream:
        with translated("could not attach to the container"):
            response = self.api._post(
                self.api._url("/containers/{0}/attach", container_id),
                # No log replay: the daemon subscribes to the live streams before it
                # answers the upgrade, so nothing printed after the start is missed, and a
                # replay of the log file would repeat what the live stream then sends.
                params={"logs": 0, "stdout": 1, "stderr": 1, "stream": 1},
                headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                stream=True,
            )
            sock = self.api._get_raw_response_socket(response)  # raises for an error status
            self.api._disable_socket_timeout(sock)  # a quiet shard may print nothing for hours
        read = _reader(sock)

        def guarded_read() -> bytes:
            with translated("reading the container's output"):
                return read()

        return OutputStream(read=guarded_read, close=response.close)

    def start(self, container_id: str) -> None:
        with translated("could not start the container"):
            self.api.start(container_id)

    def wait(self, container_id: str) -> int:
        # No HTTP read timeout: the shard's own timeout is the runner's, and a host cut off
        # from the network is noticed by the heartbeat.
        with translated("lost the engine while waiting"):
            return int(self.api.wait(container_id, timeout=None).get("StatusCode", -1))

    def kill(self, container_id: str) -> None:
        try:
            with translated("could not kill the container"):
                self.api.kill(container_id)
        except EngineRefused:
            pass  # it exited between the deadline and the kill (409), or is gone (404)

    def copy_out(self, container_id: str, path: str, chunk_size: int) -> Iterator[bytes]:
        # Not get_archive(): its stream cannot be closed, and a reader that stops early
        # (a file over the cap) must end the transfer, or the daemon sends all of it.
        with translated(f"copying {path[:100]} out of the container"):
            response = self.api._get(
                self.api._url("/containers/{0}/archive", container_id),
                params={"path": path},
                stream=True,
            )
            try:
                self.api._raise_for_status(response)
                # As get_archive does: a big file can take longer than the call timeout.
                self.api._disable_socket_timeout(self.api._get_raw_response_socket(response))
                yield from response.iter_content(chunk_size, False)
            finally:
                response.close()

    def remove(self, container_id: str) -> None:
        try:
            with translated("could not remove the container"):
                self.api.remove_container(container_id, force=True, v=True)
        except EngineRefused as exc:
            # Gone already (404), or its removal is under way (409): either way it goes.
            if getattr(exc.__cause__, "status_code", None) not in (404, 409):
                raise

    def containers(self, label: str) -> list[ContainerInfo]:
        with translated("listing containers"):
            found = self.api.containers(all=True, filters={"label": label})
        return [
            ContainerInfo(
                c["Id"],
                c.get("State", ""),
                dict(c.get("Labels") or {}),
                (c.get("Names") or [""])[0].lstrip("/"),
                float(c.get("Created") or 0),
            )
            for c in found
        ]

    def content_tags(self, project: str) -> list[TaggedImage]:
        filters = {"label": f"shardrun.project={project}", "reference": f"{CONTENT_REPO}:*"}
        with translated("listing images"):
            found = self.api.images(filters=filters)
        return [
            TaggedImage(tag, image["Id"], int(image.get("Size") or 0))
            for image in found
            for tag in image.get("RepoTags") or []
            if tag.startswith((f"{CONTENT_REPO}:", f"docker.io/{CONTENT_REPO}:"))
        ]

    def rename(self, container_id: str, name: str) -> None:
        with translated("could not rename the container"):
            self.api.rename(container_id, name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def _uses_containerd_store(info: Mapping[str, Any]) -> bool:
    # `docker info` shows the store as [["driver-type", "io.containerd.snapshotter.v1"]].
    status = info.get("DriverStatus") or []
    return any("io.containerd.snapshotter" in str(value) for pair in status for value in pair)


def _reader(sock: Any) -> Callable[[], bytes]:
    if hasattr(sock, "recv"):  # a paramiko channel (ssh://), a TLS socket
        return lambda: sock.recv(_READ)
    if isinstance(sock, socket.SocketIO):  # unix:// and tcp://: one recv_into per call
        return lambda: sock.read(_READ) or b""
    return lambda: os.read(sock.fileno(), _READ)
