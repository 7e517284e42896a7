"""The image tarball cache: one `docker save` per image ID, written atomically, verified.

A tarball is named by the image ID it holds, so an unchanged image is never saved twice,
and a half-written file never has that name (temp file + rename). Runs of one project may
share the cache at the same time: a lock per tarball lets one of them write it while the
others wait, then reuse it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardrun.distribute.artifact import blob_names, layers
from shardrun.engine.api import Engine
from shardrun.model.errors import InfraError
from shardrun.model.image_ref import content_tag
from shardrun.state import latest_image, layout
from shardrun.state.files import exclusive, no_room, temp_file, write_atomic

_CHUNK = 1 << 20
_KEEP = 3  # images kept in the cache: the current one and a couple to fall back on


@dataclass(frozen=True)
class Artifact:
    image_id: str
    path: Path
    size: int
    reused: bool
    seconds: float = 0.0  # the save's, 0 when reused


def tarball_path(cache_dir: Path, image_id: str) -> Path:
    return layout.tarball(cache_dir, image_id)


def verify(path: Path, image_id: str) -> bool:
    """True if `path` is a complete `docker save` of exactly `image_id`."""
    return layers.is_complete(path, image_id)


def ensure(
    engine: Engine,
    image_id: str,
    cache_dir: Path,
    also: Callable[[bytes], None] | None = None,
) -> Artifact:
    """Return the verified tarball of `image_id`, saving it only if the cache lacks it.
    `also` gets every block of a save as it is written (not of a reused tarball): the
    image file of `build --output` is compressed while the engine saves.

    Raises DiskFull, before writing, if the cache's disk lacks room for it, or when the
    disk fills up while writing.
    """
    path = tarball_path(cache_dir, image_id)
    started = time.monotonic()
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Another run of the project may need the same tarball now: the one that gets the lock
    # saves it, the other waits and then finds it whole.
    with exclusive(path):
        if path.exists():
            if verify(path, image_id):
                os.utime(path)  # mtime = last use: pruning and `shardrun workers` rely on it
                blob_names.learn(cache_dir, layers.compressed_blobs(path))
                return Artifact(image_id, path, path.stat().st_size, reused=True)
            path.unlink()
        needed = _room_for_save(engine, image_id, cache_dir)
        with temp_file(path, "the image tarball", needed) as tmp:
            _save(engine, image_id, tmp.file, also)
            if not verify(tmp.path, image_id):
                raise InfraError(f"the saved tarball of {image_id[:19]} is incomplete; run again")
            tmp.publish()
        size = path.stat().st_size
        blob_names.learn(cache_dir, layers.compressed_blobs(path))
    prune(cache_dir, keep=path)
    return Artifact(image_id, path, size, reused=False, seconds=time.monotonic() - started)


def _cached(image_id: str, cache_dir: Path) -> Artifact:
    """The cached tarball of an image that came as a file (image_file.import_into_cache)."""
    path = tarball_path(cache_dir, image_id)
    return Artifact(image_id, path, path.stat().st_size, reused=True)


def _room_for_save(engine: Engine, image_id: str, cache_dir: Path) -> int:
    """About how many bytes the tarball needs; DiskFull now if the disk has less, rather
    than after writing most of it."""
    size = engine.image_size(image_id)
    # Size counts file contents; the tarball adds a tar header and padding a file, and the
    # config and manifest. Too low only moves the failure to the write, which is handled.
    needed = size + size // 20 + _CHUNK
    if shutil.disk_usage(cache_dir).free < needed:
        raise no_room(cache_dir, "the image tarball", needed)
    return needed


def save_stream(engine: Engine, image_id: str, chunk_size: int = _CHUNK) -> Iterator[bytes]:
    """The build engine's `docker save` of the image under its content tag, so that the
    tarball names the image on every worker, whatever its image store."""
    tag = content_tag(image_id)
    engine.tag(image_id, tag)  # cheap, and the tag may have been removed since the build
    return engine.save(tag, chunk_size)


def _save(
    engine: Engine, image_id: str, out: BinaryIO, also: Callable[[bytes], None] | None
) -> None:
    # Streamed chunk by chunk to disk: an image can be larger than we want in memory.
    for block in save_stream(engine, image_id):
        out.write(block)
        if also is not None:
            also(block)
    out.flush()
    os.fsync(out.fileno())


def record_latest(state_dir: Path, image_id: str) -> None:
    """Remember the image of the latest build, for `shardrun workers`."""
    write_atomic(layout.latest_image(state_dir), image_id + "\n")


def latest_image_id(state_dir: Path) -> str | None:
    """The image `record_latest` noted, if the file still holds one (state/latest_image.py)."""
    return latest_image.read(state_dir)


class OnDemand:
    """The tarball of one image, saved the first time a worker needs a load, then shared.

    A run whose workers all hold the image (the usual local run: the build engine is the
    only worker) writes no tarball at all. Thread-safe: workers are served by threads.
    """

    def __init__(
        self,
        engine: Engine | None,  # None: the image came as a file, its tarball is cached
        image_id: str,
        cache_dir: Path,
        on_ready: Callable[[Artifact], None],
    ) -> None:
        self.engine, self.image_id, self.cache_dir = engine, image_id, cache_dir
        self.on_ready = on_ready
        self._lock = threading.Lock()
        self._artifact: Artifact | None = None
        self._diff_ids: list[str] | None = None
        self._image_size: int | None = None

    def get(self) -> Artifact:
        with self._lock:
            if self._artifact is None:
                self._artifact = (
                    ensure(self.engine, self.image_id, self.cache_dir)
                    if self.engine is not None
                    else _cached(self.image_id, self.cache_dir)
                )
                self.on_ready(self._artifact)
            return self._artifact

    def has_full(self) -> bool:
        """The full tarball is saved (by this run, or cached by an earlier one)."""
        with self._lock:
            return self._saved_already()

    def full_size(self) -> int:
        """Bytes of the full tarball, or about that (the image's size) if none is saved."""
        with self._lock:
            if self._artifact is not None:
                return self._artifact.size
            if self.engine is None:
                return tarball_path(self.cache_dir, self.image_id).stat().st_size
            if self._image_size is None:  # asked once per worker: inspect once
                self._image_size = self.engine.image_size(self.image_id)
            return self._image_size

    def diff_ids(self) -> list[str]:
        """The image's layers, bottom first, as the build engine has them (or, if it has
        let go of the image since, as its cached tarball says)."""
        with self._lock:
            if self._diff_ids is None and not self._saved_already() and self.engine is not None:
                self._diff_ids = self.engine.image_diff_ids(self.image_id)
        if self._diff_ids is None:
            self._diff_ids = list(layers.read_saved(self.get().path).diff_ids)
        return list(self._diff_ids)

    def _saved_already(self) -> bool:
        return self._artifact is not None or tarball_path(self.cache_dir, self.image_id).exists()


def prune(cache_dir: Path, keep: Path) -> None:
    """Drop the tarballs (full and thin) of all but the _KEEP most recently used images:
    `keep`'s and those of the newest other full tarballs. A full tarball's mtime is its
    last use (ensure touches it)."""
    others = [p.stem for p in _full_tarballs(cache_dir) if p.stem != keep.stem]
    keep_ids = {keep.stem, *others[: _KEEP - 1]}
    for path in cache_dir.iterdir():
        match = layout.CACHED_TARBALL.fullmatch(path.name)
        if match and match["id"] not in keep_ids:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _full_tarballs(cache_dir: Path) -> list[Path]:
    """Full tarballs, newest use first (thin ones are named <id>.thin<N>.tar)."""
    used: list[tuple[float, Path]] = []
    for path in cache_dir.iterdir():
        if layout.is_full_tarball(path):
            with contextlib.suppress(FileNotFoundError):  # another run's prune got it first
                used.append((path.stat().st_mtime, path))
    return [path for _, path in sorted(used, reverse=True)]
