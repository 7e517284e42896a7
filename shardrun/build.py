"""Build the test image once with BuildKit, through the Engine API.

The docker CLI here has no buildx plugin and docker-py's `APIClient.build` has no BuildKit
switch, so we POST the context ourselves to `/build?version=2` (design.md).
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import docker
from docker.api.build import process_dockerfile
from docker.utils import build as docker_build

from shardrun import buildkit_trace
from shardrun.config import ImageSpec
from shardrun.errors import BuildError, ConfigError
from shardrun.events import BuildFinished, BuildLog, BuildStarted, BuildStep, Emit

STATE_DIR = ".shardrun"

# Without a BuildKit session (which only the CLI can open) these features fail deep in the
# build with "no active session"; we say so up front.
_SESSION_ONLY = ("--mount=type=secret", "--mount=type=ssh")


def read_dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_archive(spec: ImageSpec) -> tuple[IO[bytes], str]:
    """The build context as a tar in a temporary file, and the Dockerfile's name in it.

    BuildKit sniffs the body's first bytes and reads a PAX tar (Python's default, which
    docker-py writes) as a Dockerfile, so we write GNU format with integer mtimes; no
    gzip, which costs more CPU than it saves on a local socket. The engine does not apply
    `.dockerignore` for us, and shardrun's own state never belongs in an image.
    """
    root = str(spec.context)
    dockerfile = process_dockerfile(str(spec.dockerfile), root)
    excludes = [*read_dockerignore(spec.context), STATE_DIR]
    files = sorted(docker_build.exclude_paths(root, excludes, dockerfile=dockerfile[0]))
    archive = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in files:
            _add(tar, os.path.join(root, path), path)
        if dockerfile[1] is not None:  # a Dockerfile from outside the context
            data = dockerfile[1].encode()
            info = tarfile.TarInfo(dockerfile[0])
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    archive.seek(0)
    return archive, dockerfile[0]


def _add(tar: tarfile.TarFile, full_path: str, arcname: str) -> None:
    info = tar.gettarinfo(full_path, arcname=arcname)
    if info is None:  # a socket: nothing a build can use
        return
    info.mtime = int(info.mtime)
    if info.isfile():
        with open(full_path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def _check_session_features(spec: ImageSpec) -> None:
    text = spec.dockerfile.read_text(errors="replace")
    for feature in _SESSION_ONLY:
        if feature in text:
            raise ConfigError(
                f"{spec.dockerfile}: uses {feature}, which needs a BuildKit session that "
                "the Engine API build cannot open; use a build arg or a COPY instead"
            )


def _params(spec: ImageSpec, dockerfile_name: str, labels: dict[str, str]) -> dict:
    params = {
        "version": "2",
        "dockerfile": dockerfile_name,
        "rm": "1",
        "forcerm": "1",
        "labels": json.dumps(labels),
    }
    if spec.tag:
        params["t"] = spec.tag
    if spec.target:
        params["target"] = spec.target
    if spec.build_args:
        params["buildargs"] = json.dumps(dict(spec.build_args))
    return params


def _messages(client: docker.DockerClient, body: IO[bytes], params: dict) -> Iterator[dict]:
    api = client.api
    response = api._post(
        api._url("/build"),
        params=params,
        data=body,
        headers={"Content-Type": "application/x-tar"},
        stream=True,
        timeout=None,  # a quiet RUN step can take longer than any read timeout
    )
    api._raise_for_status(response)
    yield from api._stream_helper(response, decode=True)


def build(client: docker.DockerClient, spec: ImageSpec, emit: Emit, labels: dict[str, str]) -> str:
    """Build `spec`, emitting build events, and return the image ID. Blocking."""
    _check_session_features(spec)
    started = time.time()
    emit(BuildStarted(dockerfile=str(spec.dockerfile), context=str(spec.context)))
    progress = buildkit_trace.Progress()
    image_id = None
    body, dockerfile_name = context_archive(spec)
    with body:
        params = _params(spec, dockerfile_name, labels)
        try:
            for message in _messages(client, body, params):
                image_id = _handle(message, progress, emit) or image_id
        except docker.errors.APIError as exc:
            raise BuildError(f"the engine refused the build: {exc.explanation or exc}") from exc
    if image_id is None:
        raise BuildError("the build stream ended without an image ID")
    steps = [v for v in progress.vertexes.values() if _is_dockerfile_step(v.name)]
    emit(
        BuildFinished(
            image_id=image_id,
            duration=time.time() - started,
            cached_steps=sum(v.cached for v in steps),
            total_steps=len(steps),
        )
    )
    return image_id


_STEP = re.compile(r"^\[[^\]]*\d+/\d+\] (?!FROM )")


def _is_dockerfile_step(name: str) -> bool:
    """A Dockerfile instruction that can come from the cache ("[2/3] RUN ..."), not FROM,
    the context transfer or the export, which BuildKit never reports as cached."""
    return bool(_STEP.match(name))


def _handle(message: dict, progress: buildkit_trace.Progress, emit: Emit) -> str | None:
    if "errorDetail" in message or "error" in message:
        raise BuildError(_failure(message, progress))
    if message.get("id") == "moby.image.id":
        return message["aux"]["ID"]
    if message.get("id") == "moby.buildkit.trace":
        changes, lines = progress.update(buildkit_trace.decode(message["aux"]))
        for change in changes:
            emit(BuildStep(digest=change.digest, name=change.name, state=change.state,
                           error=change.error or None))
        for name, line in lines:
            emit(BuildLog(name=name, line=line))
    return None


def _failure(message: dict, progress: buildkit_trace.Progress) -> str:
    error = (message.get("errorDetail") or {}).get("message") or message.get("error", "")
    failed = [v for v in progress.vertexes.values() if v.error]
    if not failed:
        return f"build failed: {error.strip()}"
    step = failed[-1]
    tail = progress.tail(step.digest, 20)
    text = f"build failed at step {step.name}: {step.error.strip() or error.strip()}"
    if tail:
        text += "\n" + "\n".join(f"  | {line}" for line in tail)
    return text
