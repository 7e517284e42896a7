"""Files copied out of a shard's container after it exits: its artifacts and its JUnit file.

The engine hands a path out as a tar stream (`GET /containers/{id}/archive`), which is
read member by member and written to disk as it comes, never whole in memory. Members
keep their container paths under the shard's `artifacts/` folder. Only regular files and
folders are written: a link could point anywhere on the host. A shard's artifacts stop
at its `artifacts-max`; what did not fit is listed, not silently dropped.
"""

from __future__ import annotations

import fnmatch
import posixpath
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shardrun.distribute.layers import chunk_reader, member_file
from shardrun.engine.api import Engine
from shardrun.model.errors import EngineRefused
from shardrun.model.results import FAILED, Status
from shardrun.model.shard import Shard

ARTIFACTS_MAX = 200 * 1024 * 1024  # bytes a shard's artifacts may take, unless it says
_WANTED = {"failure": FAILED}
_GLOB = set("*?[")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Collected:
    files: tuple[str, ...] = ()  # host paths of the artifacts written
    left_out: tuple[str, ...] = ()  # container paths (and sizes) the cap left out
    missing: tuple[str, ...] = ()  # artifact paths that matched nothing in the container
    junit: str | None = None  # host path of the shard's JUnit file, if it wrote one

    @property
    def note(self) -> str:
        """One line for the summary when something was not copied; "" otherwise."""
        parts = []
        if self.left_out:
            shown = ", ".join(self.left_out[:5]) + (" ..." if len(self.left_out) > 5 else "")
            parts.append(f"artifacts-max left out {len(self.left_out)} files: {shown}")
        if self.missing:
            parts.append(f"no such artifact: {', '.join(self.missing)}")
        return "; ".join(parts)


def wanted(shard: Shard, status: Status) -> bool:
    """Whether this outcome's artifacts are copied: on failure by default, or always."""
    when = shard.artifacts_when or "failure"
    return bool(shard.artifacts) and (when == "always" or status in _WANTED[when])


def collect(
    engine: Engine, container_id: str, shard: Shard, status: Status, dest: Path
) -> Collected:
    """Copy the shard's artifacts (if `wanted`) and its JUnit file into `dest`. Blocking.
    A path missing in the container is reported; engine failures propagate."""
    files: list[str] = []
    left_out: list[str] = []
    missing: list[str] = []
    if wanted(shard, status):
        budget = [shard.artifacts_max or ARTIFACTS_MAX]
        for pattern in shard.artifacts:
            base = _fixed_prefix(pattern)
            try:
                chunks = engine.copy_out(container_id, base, _CHUNK)
                found = _extract(
                    chunks,
                    posixpath.dirname(base),
                    pattern,
                    dest / "artifacts",
                    budget,
                    files,
                    left_out,
                )
            except EngineRefused:
                found = False  # not there: the engine answers 404
            if not found:
                missing.append(pattern)
    junit = None
    if shard.junit:
        try:
            junit = _copy_file(
                engine.copy_out(container_id, shard.junit, _CHUNK), dest / "junit.xml"
            )
        except EngineRefused:
            junit = None
    return Collected(tuple(files), tuple(left_out), tuple(missing), junit)


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


def _extract(
    chunks: Iterable[bytes],
    parent: str,
    pattern: str,
    root: Path,
    budget: list[int],
    files: list[str],
    left_out: list[str],
) -> bool:
    """Write the archive's matching regular files under `root` by container path; True if
    anything matched. `budget[0]` is what the shard may still write."""
    matched = False
    with tarfile.open(fileobj=chunk_reader(chunks), mode="r|", bufsize=_CHUNK) as tar:
        for member in tar:
            path = posixpath.normpath(posixpath.join(parent, member.name))
            if not path.startswith("/") or not _matches(path, pattern):
                continue
            matched = True
            if not member.isfile():
                continue  # folders come with their files; links and devices never
            if member.size > budget[0]:
                left_out.append(f"{path} ({member.size} bytes)")
                continue
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                shutil.copyfileobj(member_file(tar, member), out, _CHUNK)
            budget[0] -= member.size
            files.append(str(target))
    return matched


def _copy_file(chunks: Iterable[bytes], target: Path) -> str | None:
    """The first regular file of the archive (a file's archive holds just it) to
    `target`; None if there is none."""
    with tarfile.open(fileobj=chunk_reader(chunks), mode="r|", bufsize=_CHUNK) as tar:
        for member in tar:
            if member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    shutil.copyfileobj(member_file(tar, member), out, _CHUNK)
                return str(target)
    return None
