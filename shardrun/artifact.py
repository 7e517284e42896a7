"""The image tarball cache: one `docker save` per image ID, written atomically, verified.

A tarball is named by the image ID it holds, so an unchanged image is never saved twice,
and a half-written file never has that name (temp file + rename). Runs of one project may
share the cache at the same time: a lock per tarball lets one of them write it while the
others wait, then reuse it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardrun import layers, owner
from shardrun.engine.api import Engine
from shardrun.errors import DiskFull, InfraError
from shardrun.timings import write_atomic

_CHUNK = 1 << 20
_KEEP = 3  # images kept in the cache: the current one and a couple to fall back on
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)
# <id>.tar, <id>.thin<N>.tar, and the lock files .<id>.lock, .<id>.thin<N>.lock
_CACHED = re.compile(r"(?P<id>[0-9a-f]{64})(\.thin\d+)?\.tar")
_LOCK = re.compile(r"\.[0-9a-f]{64}(\.thin\d+)?\.lock")
# .<final name>.<pid>.<random>.tmp, and older versions' .<id>.tar.<pid>.tmp
_TEMP = (
    re.compile(r"\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp"),
    re.compile(r"\.[0-9a-f]{64}\.tar\.(?P<pid>\d+)\.tmp"),
)
# Older versions wrote thin tarballs through mkstemp(".<name>.", ".tmp"): no pid to ask.
_OLD_THIN_TEMP = re.compile(r"\.[0-9a-f]{64}\.thin\d+\.tar\.[a-z0-9_]{8}\.tmp")
_OLD_TEMP_AGE = 3600.0  # seconds: such a file this old has long lost its writer


@dataclass(frozen=True)
class Artifact:
    image_id: str
    path: Path
    size: int
    reused: bool


def tarball_path(cache_dir: Path, image_id: str) -> Path:
    return cache_dir / f"{image_id.removeprefix('sha256:')}.tar"


def verify(path: Path, image_id: str) -> bool:
    """True if `path` is a complete `docker save` of exactly `image_id`."""
    return layers.is_complete(path, image_id)


def ensure(engine: Engine, image_id: str, cache_dir: Path) -> Artifact:
    """Return the verified tarball of `image_id`, saving it only if the cache lacks it.

    Raises DiskFull, before writing, if the cache's disk lacks room for it, or when the
    disk fills up while writing.
    """
    path = tarball_path(cache_dir, image_id)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Another run of the project may need the same tarball now: the one that gets the lock
    # saves it, the other waits and then finds it whole.
    with exclusive(path):
        if path.exists():
            if verify(path, image_id):
                os.utime(path)  # mtime = last use: pruning and `shardrun workers` rely on it
                return Artifact(image_id, path, path.stat().st_size, reused=True)
            path.unlink()
        needed = _room_for_save(engine, image_id, cache_dir)
        with temp_file(path, "the image tarball", needed) as tmp:
            _save(engine, image_id, tmp.file)
            if not verify(tmp.path, image_id):
                raise InfraError(f"the saved tarball of {image_id[:19]} is incomplete; run again")
            tmp.publish()
        size = path.stat().st_size
    prune(cache_dir, keep=path)
    return Artifact(image_id, path, size, reused=False)


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


def _save(engine: Engine, image_id: str, out: BinaryIO) -> None:
    # Streamed chunk by chunk to disk: an image can be larger than we want in memory.
    out.writelines(engine.save(image_id, _CHUNK))
    out.flush()
    os.fsync(out.fileno())


def no_room(directory: Path, what: str, needed: int) -> DiskFull:
    """The one-line error for a disk too full to hold `what` in `directory`."""
    free = shutil.disk_usage(directory).free
    return DiskFull(
        f"{directory}: no room for {what}: it needs about {_mb(needed)} and {_mb(free)} "
        "are free; free some space there, or delete .shardrun/cache"
    )


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"  # the units of the live view's sizes (ui._size)


# ---- temp files: named by their writer, removed when it is gone -----------------------

_writing: set[Path] = set()  # this process's temp files, until renamed or removed
_writing_lock = threading.Lock()


def _forget_the_parents_files() -> None:
    # A forked child writes none of them: its discard_temp_files must leave them be.
    global _writing_lock
    _writing.clear()
    _writing_lock = threading.Lock()  # a parent's thread may have held it at the fork


os.register_at_fork(after_in_child=_forget_the_parents_files)


@dataclass(frozen=True)
class TempFile:
    path: Path
    file: BinaryIO  # write through this: the path may be removed at exit (discard_temp_files)
    final: Path

    def publish(self) -> None:
        """Make the content durable, then give it its final name in one step."""
        self.file.flush()
        os.fsync(self.file.fileno())
        os.replace(self.path, self.final)


@contextlib.contextmanager
def temp_file(final: Path, what: str, needed: int) -> Iterator[TempFile]:
    """A new temp file beside `final`, removed on the way out unless published.

    Its name `.{final}.{pid}.{random}.tmp` lets a later run tell a dead writer's leftover
    (sweep_stale_temp), and the registry lets this process remove it as it exits mid-write
    (discard_temp_files). A full disk is DiskFull naming `what` and about `needed` bytes,
    once the partial file is gone.
    """
    with _disk_full_as(final.parent, what, needed):
        path, fd = _create_registered(final)
        try:
            with open(fd, "wb") as out:
                yield TempFile(path, out, final)
        finally:
            _forget(path)


@contextlib.contextmanager
def _disk_full_as(directory: Path, what: str, needed: int) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_ROOM:
            raise no_room(directory, what, needed) from exc
        raise


def _create_registered(final: Path) -> tuple[Path, int]:
    # Created and registered under one lock, so discard_temp_files sees every file made.
    with _writing_lock:
        while True:
            path = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                continue
            _writing.add(path)
            return path, fd


def _forget(path: Path) -> None:
    with _writing_lock:
        _writing.discard(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def discard_temp_files() -> None:
    """Remove every temp file this process is writing. For the CLI, just before it exits,
    even on Ctrl-C: a writer thread left running writes on into a file with no name, and
    its rename fails. One that starts a file after this leaves it to sweep_stale_temp."""
    with _writing_lock:
        for path in _writing:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        _writing.clear()


def sweep_stale_temp(cache_dir: Path) -> int:
    """Remove the temp files in the cache whose writer process is gone (killed, or died
    before it could clean up), and lock files nobody holds. Returns how many temp files
    went. For the start of a command; a live writer's files stay."""
    try:
        entries = list(cache_dir.iterdir())
    except FileNotFoundError:
        return 0
    removed = 0
    for path in entries:
        if _LOCK.fullmatch(path.name):
            _remove_unheld_lock(path)
        elif _is_stale_temp(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def _is_stale_temp(path: Path) -> bool:
    for pattern in _TEMP:
        if match := pattern.fullmatch(path.name):
            return not owner.alive(int(match["pid"]))
    if _OLD_THIN_TEMP.fullmatch(path.name):
        with contextlib.suppress(FileNotFoundError):
            return time.time() - path.stat().st_mtime > _OLD_TEMP_AGE
    return False


# ---- locks: one writer of a cache file across threads and processes -------------------


@contextlib.contextmanager
def exclusive(final: Path) -> Iterator[None]:
    """Hold the lock of the cache file `final` (`.{stem}.lock` beside it).

    flock: held per open file, so threads of one process exclude each other too, and
    released by the kernel when a holder dies. The holder removes the lock file before it
    lets go, so none is left behind; a waiter that then gets the lock of the removed file
    sees that and locks the current one (the usual flock-and-unlink protocol).
    """
    lock = final.with_name(f".{final.stem}.lock")
    fd = _acquire(lock, blocking=True)
    try:
        yield
    finally:
        _release(lock, fd)


def _acquire(lock: Path, blocking: bool) -> int | None:
    flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _names(lock, fd):
            return fd
        os.close(fd)  # its holder removed it while we waited


def _names(path: Path, fd: int) -> bool:
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _release(lock: Path, fd: int) -> None:
    try:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()  # while still held: see exclusive()
    finally:
        os.close(fd)


def _remove_unheld_lock(lock: Path) -> None:
    """A lock file left by a killed holder: remove it, unless someone holds it now."""
    with contextlib.suppress(FileNotFoundError):
        fd = _acquire(lock, blocking=False)
        if fd is not None:
            _release(lock, fd)


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

    def __init__(self, engine: Engine, image_id: str, cache_dir: Path,
                 on_ready: Callable[[Artifact], None]) -> None:
        self.engine, self.image_id, self.cache_dir = engine, image_id, cache_dir
        self.on_ready = on_ready
        self._lock = threading.Lock()
        self._artifact: Artifact | None = None
        self._diff_ids: list[str] | None = None

    def get(self) -> Artifact:
        with self._lock:
            if self._artifact is None:
                self._artifact = ensure(self.engine, self.image_id, self.cache_dir)
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
        return self.engine.image_size(self.image_id)

    def diff_ids(self) -> list[str]:
        """The image's layers, bottom first, as the build engine has them (or, if it has
        let go of the image since, as its cached tarball says)."""
        with self._lock:
            if self._diff_ids is None and not self._saved_already():
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
        match = _CACHED.fullmatch(path.name)
        if match and match["id"] not in keep_ids:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _full_tarballs(cache_dir: Path) -> list[Path]:
    """Full tarballs, newest use first (thin ones are named <id>.thin<N>.tar)."""
    used: list[tuple[float, Path]] = []
    for path in cache_dir.iterdir():
        match = _CACHED.fullmatch(path.name)
        if match and path.name == f"{match['id']}.tar":
            with contextlib.suppress(FileNotFoundError):  # another run's prune got it first
                used.append((path.stat().st_mtime, path))
    return [path for _, path in sorted(used, reverse=True)]
