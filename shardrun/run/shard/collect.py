"""Files copied out of a shard's container after it exits: its JUnit file and its artifacts.

The engine hands a path out as a tar stream (`GET /containers/{id}/archive`), which is
read member by member and written to disk as it comes, never whole in memory. Members
keep their container paths under the shard's `artifacts/` folder.

All of it was written by the code under test, so every cost is bounded: the JUnit file
and the artifacts share the shard's `artifacts-max`; a file that does not fit is not read
(the archive is closed there: a 20 GB sparse file costs nothing); the whole collection
has COLLECT_WITHIN seconds. Only regular files are written (a link could point anywhere
on the host); everything left out is listed with its reason. With secrets set, files
pass through the masker on their way to the disk.
"""

from __future__ import annotations

import fnmatch
import posixpath
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardrun.distribute.artifact.layers import chunk_reader, member_file
from shardrun.engine.api import Engine
from shardrun.model.errors import EngineRefused
from shardrun.model.results import FAILED, Status
from shardrun.model.shard import Shard
from shardrun.model.text import counted, one_line
from shardrun.run.shard.junit_intake import JUNIT_MAX, take_in
from shardrun.run.shard.masking import Masker
from shardrun.state import layout

ARTIFACTS_MAX = 200 * 1024 * 1024  # bytes a shard's artifacts may take, unless it says
COLLECT_WITHIN = 60.0  # seconds for all of a shard's files
LEFT_OUT_LISTED = 1000  # entries of `left_out` kept; the count covers the rest
_WANTED = {"failure": FAILED}
_GLOB = set("*?[")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Collected:
    files: tuple[str, ...] = ()  # host paths of the artifacts written
    # "container path: why", for what was not copied (links, FIFOs, devices, over the cap,
    # past the time limit); at most LEFT_OUT_LISTED of them, `left_out_count` all.
    left_out: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # artifact paths that matched nothing in the container
    junit: str | None = None  # host path of the shard's JUnit file (rewritten), if any
    junit_note: str = ""  # what of the JUnit file was not kept
    left_out_count: int = 0

    @property
    def note(self) -> str:
        """One line for the summary when something was not copied; "" otherwise."""
        parts = []
        if self.left_out_count:
            shown = ", ".join(self.left_out[:3]) + (" ..." if self.left_out_count > 3 else "")
            parts.append(f"{counted(self.left_out_count, 'artifact')} left out: {shown}")
        if self.missing:
            parts.append(f"no such artifact: {', '.join(self.missing)}")
        if self.junit_note:
            parts.append(self.junit_note)
        return one_line("; ".join(parts))


def wanted(shard: Shard, status: Status) -> bool:
    """Whether this outcome's artifacts are copied: on failure by default, or always."""
    when = shard.artifacts_when or "failure"
    return bool(shard.artifacts) and (when == "always" or status in _WANTED[when])


class _TimeUp(Exception):
    pass


class _Budget:
    """What the shard may still write, and until when."""

    def __init__(self, size: int, seconds: float) -> None:
        self.left = size
        self.deadline = time.monotonic() + seconds
        self.left_out: list[str] = []
        self.left_out_count = 0

    def leave_out(self, path: str, why: str) -> None:
        self.left_out_count += 1
        if len(self.left_out) < LEFT_OUT_LISTED:
            self.left_out.append(f"{path}: {why}")

    def timed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if time.monotonic() > self.deadline:
                raise _TimeUp
            yield chunk


def collect(
    engine: Engine,
    container_id: str,
    shard: Shard,
    status: Status,
    dest: Path,
    secrets: Iterable[str] = (),
) -> Collected:
    """Copy the shard's JUnit file and (if `wanted`) its artifacts into `dest`. Blocking.
    A path missing in the container is reported; engine failures propagate."""
    budget = _Budget(shard.artifacts_max or ARTIFACTS_MAX, COLLECT_WITHIN)
    secrets = tuple(secrets)
    junit, junit_note = None, ""
    if shard.junit:  # first: the reports need it more than any artifact
        junit, junit_note = _junit(engine, container_id, shard.junit, dest, budget, secrets)
    files: list[str] = []
    missing: list[str] = []
    if wanted(shard, status):
        for pattern in shard.artifacts:
            base = _fixed_prefix(pattern)
            try:
                found = _extract(
                    engine.copy_out(container_id, base, _CHUNK),
                    posixpath.dirname(base),
                    pattern,
                    dest / layout.ARTIFACTS,
                    budget,
                    files,
                    secrets,
                )
            except EngineRefused:
                found = False  # not there: the engine answers 404
            except _TimeUp:
                budget.leave_out(pattern, f"not read: past the {COLLECT_WITHIN:g}s limit")
                break
            if not found:
                missing.append(pattern)
    return Collected(
        tuple(files),
        tuple(budget.left_out),
        tuple(missing),
        junit,
        junit_note,
        budget.left_out_count,
    )


def _junit(
    engine: Engine,
    container_id: str,
    path: str,
    dest: Path,
    budget: _Budget,
    secrets: tuple[str, ...],
) -> tuple[str | None, str]:
    chunks = engine.copy_out(container_id, path, _CHUNK)
    try:
        with _archive(budget.timed(chunks)) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                limit = min(JUNIT_MAX, budget.left)
                intake = take_in(
                    member_file(tar, member),
                    member.size,
                    dest / layout.SHARD_JUNIT,
                    Masker(secrets),
                    limit,
                )
                if intake.path is not None:
                    budget.left -= member.size
                return intake.path, intake.note
    except EngineRefused:
        return None, ""
    except _TimeUp:
        return None, f"JUnit file not read: past the {COLLECT_WITHIN:g}s limit"
    finally:
        _close(chunks)
    return None, ""


def _fixed_prefix(pattern: str) -> str:
    """The deepest folder of `pattern` without glob characters (the path itself if it has
    none): what is asked of the engine, since its archive endpoint does not glob."""
    parts = pattern.rstrip("/").split("/")
    fixed = []
    for part in parts:
        if _GLOB & set(part):
            break
        fixed.append(part)
    return "/".join(fixed) or "/"


def _matches(path: str, pattern: str) -> bool:
    """`path` is matched by `pattern` segment by segment (a `*` stays within one folder),
    or lies inside a folder it matches."""
    want = pattern.rstrip("/").split("/")
    have = path.split("/")
    return len(have) >= len(want) and all(
        fnmatch.fnmatchcase(h, w) for h, w in zip(have, want, strict=False)
    )


def _kind(member: tarfile.TarInfo) -> str | None:
    """Why a member that is not a regular file is not copied; None for a folder."""
    if member.isdir():
        return None
    if member.issym():
        return "a symbolic link"
    if member.islnk():
        return "a hard link"
    if member.isfifo():
        return "a FIFO"
    if member.ischr() or member.isblk():
        return "a device"
    return "not a regular file"


def _extract(
    chunks: Iterator[bytes],
    parent: str,
    pattern: str,
    root: Path,
    budget: _Budget,
    files: list[str],
    secrets: tuple[str, ...],
) -> bool:
    """Write the archive's matching regular files under `root` by container path; True if
    anything matched. A file over what is left of the budget ends the read of this
    archive: skipping it would mean reading it."""
    matched = False
    try:
        with _archive(budget.timed(chunks)) as tar:
            for member in tar:
                path = posixpath.normpath(posixpath.join(parent, member.name))
                if not path.startswith("/") or not _matches(path, pattern):
                    continue
                matched = True
                if not member.isfile():
                    if (why := _kind(member)) is not None:
                        budget.leave_out(path, why)
                    continue
                if member.size > budget.left:
                    budget.leave_out(
                        path,
                        f"{member.size} bytes, over artifacts-max "
                        f"(and what follows it in {pattern}: not read)",
                    )
                    break
                target = root / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    _copy(member_file(tar, member), out, Masker(secrets))
                budget.left -= member.size
                files.append(str(target))
    finally:
        _close(chunks)
    return matched


def _copy(src: BinaryIO, out: BinaryIO, masker: Masker) -> None:
    while block := src.read(_CHUNK):
        out.write(masker.feed(block) if masker else block)
    if masker:
        out.write(masker.flush())


def _archive(chunks: Iterable[bytes]) -> tarfile.TarFile:
    return tarfile.open(fileobj=chunk_reader(chunks), mode="r|", bufsize=_CHUNK)


def _close(chunks: Iterable[bytes]) -> None:
    # Ends the engine's archive stream: what was not read is never sent.
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
