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
from dataclasses import dataclass
from pathlib import Path

import docker

from shardrun.errors import InfraError

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


def latest_image_id(cache_dir: Path) -> str | None:
    """The image of the most recent build or run, if any."""
    tarballs = _full_tarballs(cache_dir) if cache_dir.is_dir() else []
    return f"sha256:{tarballs[0].stem}" if tarballs else None


def prune(cache_dir: Path, keep: Path) -> None:
    """Drop all but the newest images' tarballs (full and thin), so the cache stays small."""
    keep_ids = {keep.stem} | {p.stem for p in _full_tarballs(cache_dir)[: _KEEP - 1]}
    for path in cache_dir.glob("*.tar"):
        if path.name.split(".")[0] not in keep_ids:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
