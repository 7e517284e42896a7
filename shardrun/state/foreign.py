"""Reading a file that another machine, job or process made: a CI artifact, a cache, a
plan, a state file. Such a file is untrusted input. Whatever it claims, reading it costs
a bounded amount of time and memory, never blocks (a FIFO, a device), never follows a
link out of the folder it belongs to, and never reaches a path its content names outside
that folder.

The primitives raise `Refused`, one phrase saying what is wrong; each reader turns that
into its own one-line error naming the file and the fix (exit 2 or 4), or for state
shardrun wrote itself into a fallback with one line.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path, PurePosixPath
from typing import Any

# Deeper than any file shardrun writes (report.json nests about 6), shallow enough that
# no reader's recursion comes near Python's limit.
MAX_DEPTH = 32


class Refused(ValueError):
    """What makes a foreign file unusable, as a phrase: "a FIFO, not a regular file"."""


def open_regular(path: Path, within: Path | None = None) -> int:
    """A read-only descriptor of `path`, a regular file. With `within`: `path` must lie in
    that folder once every link is resolved, and its last component must not be a link."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO opens at once, then is refused
    if within is not None:
        inside(within, path)
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if within is not None and os.path.islink(path):
            raise Refused("a symbolic link, not a regular file") from None
        raise Refused(exc.strerror or type(exc).__name__) from None
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        raise Refused(f"{_kind(kind)}, not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_bytes(path: Path, limit: int, within: Path | None = None) -> bytes:
    """The whole content of the regular file `path`, at most `limit` bytes (a file that is
    or grows larger is refused, having read no more than `limit` + 1)."""
    fd = open_regular(path, within)
    with open(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if size > limit:
            raise Refused(f"{_size(size)}, over the {_size(limit)} such a file may have")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"over the {_size(limit)} such a file may have")
    return data


def read_json(path: Path, limit: int, within: Path | None = None, depth: int = MAX_DEPTH) -> Any:
    """`path` as JSON: a regular file of at most `limit` bytes, nested at most `depth`
    deep, with finite numbers only (NaN and Infinity are Python's, not JSON's)."""
    return parse_json(read_bytes(path, limit, within), depth)


def read_state(path: Path, limit: int, depth: int, then: str) -> Any:
    """A JSON state file shardrun writes itself (timings.json, workers.json) as
    `read_json` reads it within its own folder; None if it is missing, and also, with
    one line on stderr (once a process, `then` saying what becomes of it), if it
    cannot be read: for such a file, a fault is a fallback, not an error."""
    data = read_state_bytes(path, limit, then)
    try:
        return None if data is None else parse_json(data, depth)
    except Refused as exc:
        ignoring(path, str(exc), then)
        return None


def read_state_bytes(path: Path, limit: int, then: str) -> bytes | None:
    """The bytes of a state file shardrun writes itself, as `read_bytes` reads them
    within its own folder; None, as `read_state`, if it is missing or cannot be read."""
    try:
        return read_bytes(path, limit, within=path.parent)
    except FileNotFoundError:
        return None
    except (Refused, OSError) as exc:
        why = str(exc) if isinstance(exc, Refused) else exc.strerror or type(exc).__name__
        ignoring(path, why, then)
        return None


def ignoring(path: Path, why: str, then: str) -> None:
    """Say once a process that the state file `path` is ignored, `why`, and `then` what
    becomes of it: the one line of a state file's fallback."""
    if (path, why) not in _told:
        _told.add((path, why))
        print(f"shardrun: ignoring {path}: {why}; {then}", file=sys.stderr)


_told: set[tuple[Path, str]] = set()


def parse_json(data: bytes | str, depth: int = MAX_DEPTH) -> Any:
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise Refused(f"nested deeper than {depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an overlong integer
        raise Refused(f"not JSON ({str(exc).splitlines()[0][:100]})") from None
    check_depth(value, depth)
    return value


def check_depth(value: Any, depth: int = MAX_DEPTH) -> None:
    """Refused if `value` nests lists and dicts deeper than `depth`. Iterative: a value
    too deep to walk recursively is exactly what this must catch."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            if level > depth:
                raise Refused(f"nested deeper than {depth} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def inside(root: Path, path: Path | str) -> Path:
    """`path` (relative to `root`, or absolute) resolved, if it lies inside `root`
    once links are followed; Refused naming it otherwise."""
    try:
        base = root.resolve()
        target = (base / path).resolve()
    except RuntimeError:  # Python 3.11 raises this, not OSError, on a loop of links
        raise Refused(f'"{path}" is a loop of symbolic links') from None
    if target != base and base not in target.parents:
        raise Refused(f'"{path}" lies outside {root}')
    return target


def relative_name(text: object, limit: int = 255) -> PurePosixPath:
    """A relative path as a file names it (a log, a layer, an artifact): no absolute path,
    no `..`, no empty or control characters. Refused otherwise."""
    if not isinstance(text, str) or not text or len(text) > 4 * limit:
        raise Refused(f"{_show(text)} is not a file name")
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise Refused(f"{_show(text)} holds a control character")
    name = PurePosixPath(text)
    if name.is_absolute() or ".." in name.parts or any(len(p) > limit for p in name.parts):
        raise Refused(f"{_show(text)} is not a relative path inside its folder")
    return name


def number(value: object, low: float, high: float) -> float | None:
    """`value` if it is a finite number in [low, high] (a bool is none), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # Compared before any conversion: JSON's 10**400 is a Python int no float can hold.
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        return None
    return float(value)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size} bytes"
