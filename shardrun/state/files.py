"""Files of the state folder that must survive faults: temp files named by their writer
(so a dead writer's leftovers are recognised and removed), a lock per cached file (so runs
sharing the cache write each file once), and a full disk as one DiskFull line."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardrun.model import owner
from shardrun.model.errors import DiskFull
from shardrun.state import layout

_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)
_OLD_TEMP_AGE = 3600.0  # seconds: an old-style temp file this old has long lost its writer


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

    def publish(self, final: Path | None = None) -> None:
        """Make the content durable, then give it its final name (or `final`, when that is
        known only once it is written) in one step."""
        self.file.flush()
        os.fsync(self.file.fileno())
        os.replace(self.path, final or self.final)


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
            path = layout.temp(final, os.getpid(), secrets.token_hex(4))
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


def sweep_stale_temp(state_dir: Path) -> int:
    """Remove the temp files in the state folder and its cache whose writer process is
    gone (killed, or died before it could clean up), and lock files nobody holds. Returns
    how many temp files went. For the start of a command; a live writer's files stay."""
    removed = 0
    for folder in (state_dir, layout.cache(state_dir)):
        try:
            entries = list(folder.iterdir())
        except FileNotFoundError:
            continue
        for path in entries:
            if layout.LOCK.fullmatch(path.name):
                _remove_unheld_lock(path)
            else:
                removed += _remove_if_stale(path)
    return removed


def sweep_stale_temp_beside(final: Path) -> int:
    """Remove the temp files of `final` whose writer is gone: a file written outside the
    state folder (`build --output`'s) leaves its temp file beside it when the writer is
    killed, where no other sweep looks. Returns how many went."""
    prefix = f".{final.name}."
    try:
        entries = [p for p in final.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return 0
    return sum(_remove_if_stale(path) for path in entries)


def _remove_if_stale(path: Path) -> bool:
    if not _is_stale_temp(path):
        return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        return True
    return False


def _is_stale_temp(path: Path) -> bool:
    for pattern in layout.TEMP:
        if match := pattern.fullmatch(path.name):
            return not owner.alive(int(match["pid"]))
    if layout.OLD_THIN_TEMP.fullmatch(path.name):
        with contextlib.suppress(FileNotFoundError):
            return time.time() - path.stat().st_mtime > _OLD_TEMP_AGE
    return False


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file and rename, so a reader never sees half a file."""
    data = text.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_file(path, path.name, len(data)) as tmp:
        tmp.file.write(data)
        os.fchmod(tmp.file.fileno(), 0o644)  # reports are for everyone to read, whatever the umask
        tmp.publish()


def exit_now(code: int) -> None:
    """Exit at once, removing first the temp files this process was still writing.

    os._exit: a thread abandoned on an engine that stopped answering cannot be interrupted,
    and the interpreter would wait for it forever; tearing down the SDK's objects also
    costs ~0.2 s a run.
    """
    discard_temp_files()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ---- locks: one writer of a cache file across threads and processes -------------------


@contextlib.contextmanager
def exclusive(final: Path) -> Iterator[None]:
    """Hold the lock of the cache file `final` (`.{stem}.lock` beside it).

    flock: held per open file, so threads of one process exclude each other too, and
    released by the kernel when a holder dies. The holder removes the lock file before it
    lets go, so none is left behind; a waiter that then gets the lock of the removed file
    sees that and locks the current one (the usual flock-and-unlink protocol).
    """
    lock = layout.lock(final)
    fd = _acquire(lock, blocking=True)
    assert fd is not None  # a blocking acquire returns only once it holds the lock
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


def make_state_dirs(state_dir: Path) -> None:
    """.shardrun/ holds logs that may show what a test saw: only its owner may read it.
    Temp files of runners that died mid-write (SIGKILL during a save) go here too."""
    for path in (state_dir, layout.cache(state_dir), layout.runs(state_dir)):
        path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)  # made by an older version with the umask's mode
    sweep_stale_temp(state_dir)
