"""The image tarball cache: one `docker save` per image ID, written atomically, verified.

A tarball is named by the image ID it holds, so an unchanged image is never saved twice,
and a half-written file never has that name (temp file + rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker

from shardrun.errors import InfraError
from shardrun.timings import write_atomic

_CHUNK = 1 << 20
_KEEP = 3  # tarballs kept in the cache: the current image and a couple to fall back on


@dataclass(frozen=True)
class Artifact:
    image_id: str
    path: Path
    size: int
    reused: bool


def tarball_path(cache_dir: Path, image_id: str) -> Path:
    return cache_dir / f"{image_id.removeprefix('sha256:')}.tar"


def verify(path: Path, image_id: str) -> bool:
    """True if `path` is a complete `docker save` of exactly `image_id`.

    The config blob's sha256 is the image ID, and every layer the manifest names must be
    in the archive: that catches truncation and a tarball of another image.
    """
    try:
        with tarfile.open(path) as tar:
            names = set(tar.getnames())
            manifest = json.load(tar.extractfile("manifest.json"))
            if len(manifest) != 1:
                return False
            entry = manifest[0]
            config = tar.extractfile(entry["Config"]).read()
    except (OSError, tarfile.TarError, KeyError, ValueError, AttributeError):
        return False
    if "sha256:" + hashlib.sha256(config).hexdigest() != image_id:
        return False
    return all(layer in names for layer in entry["Layers"])


def ensure(client: docker.DockerClient, image_id: str, cache_dir: Path) -> Artifact:
    """Return the verified tarball of `image_id`, saving it only if the cache lacks it."""
    path = tarball_path(cache_dir, image_id)
    if path.exists():
        if verify(path, image_id):
            os.utime(path)  # mtime = last use: pruning and `shardrun workers` rely on it
            return Artifact(image_id, path, path.stat().st_size, reused=True)
        path.unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _save(client, image_id, tmp)
        if not verify(tmp, image_id):
            raise InfraError(f"the saved tarball of {image_id[:19]} is incomplete; run again")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    prune(cache_dir, keep=path)
    return Artifact(image_id, path, path.stat().st_size, reused=False)


def _save(client: docker.DockerClient, image_id: str, dest: Path) -> None:
    # Streamed chunk by chunk to disk: an image can be larger than we want in memory.
    try:
        chunks = client.api.get_image(image_id, chunk_size=_CHUNK)
        with open(dest, "wb") as out:
            out.writelines(chunks)
            out.flush()
            os.fsync(out.fileno())
    except docker.errors.DockerException as exc:
        raise InfraError(f"saving image {image_id[:19]} failed: {exc}") from exc


def _full_tarballs(cache_dir: Path) -> list[Path]:
    """Full tarballs, newest use first (thin ones are named <id>.thin<N>.tar)."""
    tarballs = [p for p in cache_dir.glob("*.tar") if "." not in p.stem]
    return sorted(tarballs, key=lambda p: p.stat().st_mtime, reverse=True)


def record_latest(state_dir: Path, image_id: str) -> None:
    """Remember the image of the latest build, for `shardrun workers`."""
    write_atomic(state_dir / "image-id", image_id + "\n")


def latest_image_id(state_dir: Path) -> str | None:
    try:
        return (state_dir / "image-id").read_text().strip() or None
    except OSError:
        return None


class OnDemand:
    """The tarball of one image, saved the first time a worker needs a load, then shared.

    A run whose workers all hold the image (the usual local run: the build engine is the
    only worker) writes no tarball at all. Thread-safe: workers are served by threads.
    """

    def __init__(self, client: docker.DockerClient, image_id: str, cache_dir: Path,
                 on_ready: Callable[[Artifact], None]) -> None:
        self.client, self.image_id, self.cache_dir = client, image_id, cache_dir
        self.on_ready = on_ready
        self._lock = threading.Lock()
        self._artifact: Artifact | None = None

    def get(self) -> Artifact:
        with self._lock:
            if self._artifact is None:
                self._artifact = ensure(self.client, self.image_id, self.cache_dir)
                self.on_ready(self._artifact)
            return self._artifact


def prune(cache_dir: Path, keep: Path) -> None:
    """Drop all but the newest images' tarballs (full and thin), so the cache stays small."""
    keep_ids = {keep.stem} | {p.stem for p in _full_tarballs(cache_dir)[: _KEEP - 1]}
    for path in cache_dir.glob("*.tar"):
        if path.name.split(".")[0] not in keep_ids:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
