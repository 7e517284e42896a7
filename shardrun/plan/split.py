"""Splitting a suite's files into balanced groups by their recorded times. Pure.

Longest processing time first (LPT): files are placed, longest first, into the group with
the least expected time so far, ties broken by name and then by group number, so the same
times give the same groups on every machine. A file with no recorded time counts as the
mean of the known ones (1 s when none is known): new tests neither pile up in one group
nor all go last.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Mapping, Sequence

FILES = "{files}"
UNKNOWN = 1.0  # seconds a file counts for when no file has a recorded time


def estimates(files: Sequence[str], known: Mapping[str, float]) -> dict[str, float]:
    """Each file's expected seconds: its record, else the mean of the recorded ones."""
    recorded = [known[f] for f in files if f in known]
    mean = sum(recorded) / len(recorded) if recorded else UNKNOWN
    return {f: known.get(f, mean) for f in files}


def groups(files: Sequence[str], count: int, known: Mapping[str, float]) -> list[list[str]]:
    """`files` in `count` groups of about equal expected time; each group in name order.
    ValueError if there are fewer files than groups."""
    if count < 1 or len(files) < count:
        raise ValueError(f"{len(files)} files cannot make {count} groups")
    expected = estimates(files, known)
    loads = [0.0] * count
    placed: list[list[str]] = [[] for _ in range(count)]
    for name in sorted(files, key=lambda f: (-expected[f], f)):
        target = min(range(count), key=lambda i: (loads[i], i))
        placed[target].append(name)
        loads[target] += expected[name]
    return [sorted(group) for group in placed]


def makespan(placed: Sequence[Sequence[str]], expected: Mapping[str, float], slots: int) -> float:
    """The expected wall time of the groups on `slots` slots, longest group first."""
    return span([sum(expected[f] for f in group) for group in placed], slots)


def span(seconds: Sequence[float], slots: int) -> float:
    """The expected wall time of jobs of these seconds on `slots` slots, longest first."""
    durations = sorted(seconds, reverse=True)
    ends = [0.0] * max(slots, 1)
    for each in durations:
        i = min(range(len(ends)), key=ends.__getitem__)
        ends[i] += each
    return max(ends, default=0.0)


def expand_files(argv: Sequence[str] | None, files: Sequence[str]) -> tuple[str, ...] | None:
    """A `{files}` word of a command becomes the group's files, as separate arguments;
    inside a longer word (`sh -c "pytest {files}"`) they are shell-quoted and joined."""
    if argv is None:
        return None
    out: list[str] = []
    for word in argv:
        if word == FILES:
            out.extend(files)
        else:
            out.append(word.replace(FILES, shlex.join(files)))
    return tuple(out)


def mentions_files(argv: Sequence[str] | None) -> bool:
    return argv is not None and any(FILES in word for word in argv)


def spread(duration: float, files: Sequence[str], known: Mapping[str, float]) -> dict[str, float]:
    """A group's measured duration shared among its files in proportion to their current
    estimates: without per-test times, repeated runs still converge."""
    expected = estimates(files, known)
    total = sum(expected.values()) or 1.0
    return {f: duration * expected[f] / total for f in files}


def match(files: Sequence[str], glob: str) -> list[str]:
    """The paths (relative, with /) among `files` that `glob` matches, in name order: `*`
    and `?` stay within a folder, `**` spans any number of folders."""
    pattern = _glob_regex(glob)
    return sorted(f for f in files if pattern.fullmatch(f))


@functools.lru_cache(maxsize=256)  # affinity matches every file against each glob
def _glob_regex(glob: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))
