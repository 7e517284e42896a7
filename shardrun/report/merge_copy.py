"""A partition's run folder, copied into the merged run: regular files only, within one
budget for the whole merge, each JUnit file read as a run reads it.

The folder is a CI artifact from another machine (merge_input.py). Nothing in it is
followed: a link (to /etc/shadow, to /etc, to /dev/zero), a FIFO, a device, a socket or
a hard link is not copied, only counted. Every file is opened without following a link
and must still lie in its folder. The files the reports read (logs and JUnit files) are
copied first, then the rest, while COPY_MAX bytes and COPY_FILES files last; a JUnit
file goes through the run's intake (run/junit_intake.py, given by the caller: the report
package does not reach into the run's), so what the reports parse is the small,
well-formed file a run would have written, never the raw one.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast

from shardrun.model.text import counted
from shardrun.state.foreign import Refused, open_regular

# What one merge copies: generous for a matrix's logs, JUnit files and artifacts (a run
# keeps each shard's within its artifacts-max, 200 MB unless set), and a bound on the
# disk a hostile folder can fill. Entries looked at (links and folders too): 2 x files.
COPY_MAX = 4 * 1024 * 1024 * 1024
COPY_FILES = 200_000
_CHUNK = 1 << 20

# The run's JUnit intake: (the file, its size, where to write it) -> (the path written or
# None, a note on what was not kept).
TakeJunit = Callable[[BinaryIO, int, Path], tuple[str | None, str]]


@dataclass
class Budget:
    """What the merge may still copy, and what it left out for want of room."""

    size: int = COPY_MAX
    files: int = COPY_FILES
    entries: int = 2 * COPY_FILES  # looked at in all: files, folders, links
    left_out: int = 0
    left_out_size: int = 0
    unseen: bool = False  # a folder held more entries than were looked at

    def __post_init__(self) -> None:
        self.limits = (self.size, self.files)

    def note(self) -> str:
        parts = []
        if self.left_out:
            parts.append(f"{counted(self.left_out, 'file')} ({self.left_out_size / 1e6:.1f} MB)")
        if self.unseen:
            parts.append("the entries past the first ones looked at")
        if not parts:
            return ""
        size, files = self.limits
        return (
            f"not copied: {' and '.join(parts)}, over what one merge copies "
            f"({f'{size / 2**30:g} GiB' if size >= 2**30 else f'{size} bytes'}, {files} files)"
        )


@dataclass
class Folder:
    """A partition's folder as it was found, no link followed."""

    root: Path
    files: dict[PurePosixPath, int] = field(default_factory=dict)  # regular file: size
    others: dict[PurePosixPath, str] = field(default_factory=dict)  # link, FIFO...: kind
    copied: set[PurePosixPath] = field(default_factory=set)
    junit_notes: dict[PurePosixPath, str] = field(default_factory=dict)

    def skipped(self) -> str:
        """What was not copied, "2 symbolic links, 1 FIFO", or ""."""
        counts = Counter(self.others.values())
        return ", ".join(f"{n} {kind}{'s' * (n > 1)}" for kind, n in sorted(counts.items()))

    def behind_link(self, rel: PurePosixPath) -> bool:
        """Whether `rel`, or a folder on its way, is a link or special file."""
        return any(
            PurePosixPath(*rel.parts[:i]) in self.others for i in range(1, len(rel.parts) + 1)
        )


def scan(root: Path, budget: Budget) -> Folder:
    """What `root` holds: its regular files and their sizes, and what else is there."""
    found = Folder(root)
    stack = [PurePosixPath()]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(root / rel) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            found.others[rel] = "unreadable folder"
            continue
        for entry in entries:
            budget.entries -= 1
            if budget.entries < 0:
                budget.unseen = True
                return found
            path = rel / entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                found.others[path] = "unreadable file"
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(path)
            elif stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                found.files[path] = info.st_size
            else:
                found.others[path] = _kind(info)
    return found


def copy(
    folder: Folder,
    dest: Path,
    rels: Iterable[PurePosixPath],
    budget: Budget,
    junit: set[PurePosixPath],
    take_junit: TakeJunit,
) -> None:
    """Copy the files `rels` of `folder` into `dest` (those in `junit` through the run's
    intake), as far as the budget lasts; `folder.copied` records what was written."""
    for rel in rels:
        size = folder.files.get(rel)
        if size is None or rel in folder.copied:
            continue
        if size > budget.size or budget.files <= 0:
            budget.left_out += 1
            budget.left_out_size += size
            continue
        written = _copy_one(folder, rel, dest / rel, size, take_junit if rel in junit else None)
        if written is not None:
            folder.copied.add(rel)
            budget.size -= written
            budget.files -= 1


def _copy_one(
    folder: Folder, rel: PurePosixPath, target: Path, size: int, take_junit: TakeJunit | None
) -> int | None:
    """Bytes written for `rel` (None if it was not: gone, changed into a link, or a
    JUnit file the intake did not keep)."""
    try:
        fd = open_regular(folder.root / rel, within=folder.root)
    except (FileNotFoundError, Refused):
        folder.others[rel] = "changed file"  # a link now, or gone
        return None
    with open(fd, "rb") as source:
        data = _Upto(source, size)  # a file that grew is copied as it was found
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if take_junit is not None:
                written, note = take_junit(cast(BinaryIO, data), size, target)
                if note:
                    folder.junit_notes[rel] = note
                return None if written is None else target.stat().st_size
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            with open(os.open(target, flags, 0o644), "wb") as out:
                while block := data.read(_CHUNK):
                    out.write(block)
                return out.tell()
        except OSError as exc:
            raise CopyFailed(f"cannot write {target}: {exc.strerror}") from None


class CopyFailed(Exception):
    """The merged run's own folder cannot be written (a full disk, no permission)."""


class _Upto:
    """A file read no further than `size` bytes."""

    def __init__(self, source: BinaryIO, size: int) -> None:
        self.source, self.left = source, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        block = self.source.read(n) if n else b""
        self.left -= len(block)
        return block


def _kind(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, name in (
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "device"),
        (stat.S_ISBLK, "device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISREG, "hard link"),  # a regular file with other names elsewhere
    ):
        if test(mode):
            return name
    return "special file"
