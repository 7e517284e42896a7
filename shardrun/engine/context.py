"""The build context as the engine takes it: a tar of the context folder, `.dockerignore`
applied by the client (the engine does not apply it to a context sent this way), with
docker-py's own rules for matching it and for a Dockerfile outside the context."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from docker.api.build import process_dockerfile
from docker.utils import build as docker_build


def read_dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(context: Path, dockerfile_path: Path, exclude: Sequence[str] = ()) -> list[str]:
    """The files the build context sends (after .dockerignore), as relative paths with /,
    in name order: what a `split` shares out. `exclude`: patterns the context never
    sends, whatever .dockerignore says (shardrun's state folder)."""
    root = str(context)
    dockerfile = process_dockerfile(str(dockerfile_path), root)
    excludes = [*read_dockerignore(context), *exclude]
    found = docker_build.exclude_paths(root, excludes, dockerfile=dockerfile[0])
    return sorted(p.replace(os.sep, "/") for p in found if os.path.isfile(os.path.join(root, p)))


def context_archive(
    context: Path, dockerfile_path: Path, exclude: Sequence[str] = ()
) -> tuple[IO[bytes], str]:
    """The build context as a tar in a temporary file, and the Dockerfile's name in it.

    BuildKit sniffs the body's first bytes and reads a PAX tar (Python's default, which
    docker-py writes) as a Dockerfile, so we write GNU format with integer mtimes; no
    gzip, which costs more CPU than it saves on a local socket. The engine does not apply
    `.dockerignore` for us; `exclude` as for `context_files`.
    """
    root = str(context)
    dockerfile = process_dockerfile(str(dockerfile_path), root)
    excludes = [*read_dockerignore(context), *exclude]
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
