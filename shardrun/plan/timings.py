"""Shard durations from earlier runs, which the next plan uses to start the longest first.

The file is shardrun's own, but a CI cache or a commit may carry it from elsewhere, and
anything may have replaced it: it is read as a foreign file (state/foreign.py), and one
that cannot be read is no history, said in one line, and written anew by the next run.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from shardrun.model.results import ShardResult, Status
from shardrun.plan import split
from shardrun.plan.affinity import NO_SETUP, Setup
from shardrun.state import foreign
from shardrun.state.files import write_atomic

_SMOOTHING = 0.5  # weight of the newest duration: recent runs matter, one outlier less
# Seconds a recorded time may be: 115 days, beyond the longest timeout a config allows
# (365 d is for a slip's sake) and any CI job; a larger one is damage, not a measurement,
# and 1e308 of it made plans of "~infs".
MAX_SECONDS = 1e7
# Names and seconds: a few hundred shards, and a split of 20,000 files at about 100 bytes
# each, come to 2-3 MB.
TIMINGS_MAX = 8_000_000
_DEPTH = 4  # {"files": {name: seconds}} is 2 deep
_NAME_MAX = 4096  # characters of a shard or file name


def load(path: Path) -> dict[str, float]:
    """Recorded durations; a missing or unreadable file is an empty history, not an error."""
    return _section(path, "durations")


def update(old: Mapping[str, float], results: Iterable[ShardResult]) -> dict[str, float]:
    """Blend in the durations of shards that ran to a verdict (PASS or FAIL)."""
    new = dict(old)
    for result in results:
        if result.status not in (Status.PASS, Status.FAIL) or result.duration is None:
            continue
        previous = new.get(result.name)
        duration = result.duration
        new[result.name] = round(
            duration if previous is None else _SMOOTHING * duration + (1 - _SMOOTHING) * previous,
            3,
        )
    return new


def load_gap(path: Path) -> float:
    """Recorded seconds a slot spends per shard outside its container's run (creating,
    attaching, recording): what a plan adds to each shard it places; 0 when unknown."""
    return recorded_gap(path) or 0.0


def recorded_gap(path: Path) -> float | None:
    return _section(path, "slot").get("gap")


def update_gap(old: float | None, results: Iterable[ShardResult]) -> float | None:
    """Blend in the median time between one shard's end and the next one's start on the
    same slot; None while no slot has run two shards."""
    by_slot: dict[tuple[str | None, int | None], list[ShardResult]] = {}
    for r in results:
        if r.started is not None and r.finished is not None and r.worker is not None:
            by_slot.setdefault((r.worker, r.slot), []).append(r)
    gaps = []
    for ran in by_slot.values():
        ran.sort(key=lambda r: r.started or 0.0)
        gaps += [
            b.started - a.finished
            for a, b in itertools.pairwise(ran)
            if b.started is not None and a.finished is not None and b.started >= a.finished
        ]
    if not gaps:
        return old
    gap = sorted(gaps)[len(gaps) // 2]
    # Gaps of seconds are a slot waiting for work (a worker's load, a retry), not cost.
    gap = min(gap, 2.0)
    return round(gap if old is None else _SMOOTHING * gap + (1 - _SMOOTHING) * old, 3)


def load_setup(path: Path) -> Setup:
    """The recorded fixed cost of a split group and its cost per directory touched."""
    return recorded_setup(path) or NO_SETUP


def recorded_setup(path: Path) -> Setup | None:
    """As load_setup, but None when none is recorded: a first estimate is not blended
    with zeros."""
    found = _section(path, "setup")
    return Setup(found.get("base", 0.0), found.get("per_dir", 0.0)) if found else None


def update_setup(old: Setup | None, samples: Sequence[tuple[float, int]]) -> Setup | None:
    """Blend in what this run's split groups say of the setup: each sample is a group's
    seconds outside its test cases and how many directories it touched. A least-squares
    line through them (base + per_dir x directories) when the groups touched different
    numbers; else the old per_dir stands and the base is what is left. None: nothing to
    learn."""
    if not samples:
        return old
    n = [float(k) for _, k in samples]
    o = [seconds for seconds, _ in samples]
    mean_n, mean_o = sum(n) / len(n), sum(o) / len(o)
    spread = sum((k - mean_n) ** 2 for k in n)
    if spread > 0:
        per_dir = sum((k - mean_n) * (t - mean_o) for k, t in zip(n, o, strict=True)) / spread
    else:
        per_dir = old.per_dir if old else 0.0
    per_dir = max(per_dir, 0.0)
    base = mean_o - per_dir * mean_n
    if base < 0:  # the line crosses below zero: all of it per directory
        base, per_dir = 0.0, mean_o / mean_n if mean_n else 0.0
    if old is not None:
        base = _SMOOTHING * base + (1 - _SMOOTHING) * old.base
        per_dir = _SMOOTHING * per_dir + (1 - _SMOOTHING) * old.per_dir
    return Setup(round(base, 3), round(per_dir, 3))


def load_files(path: Path) -> dict[str, float]:
    """Recorded seconds per file of a `split` (see split.py)."""
    return _section(path, "files")


def _section(path: Path, key: str) -> dict[str, float]:
    """The names and seconds of one section; whatever is not a finite number of seconds
    from 0 to MAX_SECONDS (a damaged or hand-edited file) is left out, as if never
    recorded."""
    section = _read(path).get(key)
    if not isinstance(section, dict):
        return {}
    return {
        name: seconds
        for name, value in section.items()
        if len(name) <= _NAME_MAX and (seconds := foreign.number(value, 0, MAX_SECONDS)) is not None
    }


def _read(path: Path) -> dict:
    data = foreign.read_state(path, TIMINGS_MAX, _DEPTH, "it is rewritten by the next run")
    return data if isinstance(data, dict) else {}


def update_files(
    old: Mapping[str, float],
    results: Iterable[ShardResult],
    files_of: Mapping[str, Sequence[str]],
    exists: Callable[[str], bool],
    measured: Callable[
        [ShardResult, Sequence[str]], Mapping[str, float] | None
    ] = lambda result, files: None,
) -> dict[str, float]:
    """Blend in per-file seconds of the split shards that ran to a verdict: measured ones
    (their own test cases' time, from their JUnit files: the group's time outside them is
    its setup, see update_setup), else their duration spread over their files by the
    current estimates. Files this run did not run keep their times; files gone are
    dropped."""
    new = {f: t for f, t in old.items() if exists(f)}
    for result in results:
        files = files_of.get(result.name)
        if not files or result.status not in (Status.PASS, Status.FAIL) or not result.duration:
            continue
        seconds = measured(result, files) or split.spread(result.duration, files, new)
        for name in files:
            if name in seconds:
                previous = new.get(name)
                value = (
                    seconds[name]
                    if previous is None
                    else (_SMOOTHING * seconds[name] + (1 - _SMOOTHING) * previous)
                )
                new[name] = round(value, 3)
    return new


def save(
    path: Path,
    durations: Mapping[str, float],
    files: Mapping[str, float] | None = None,
    gap: float | None = None,
    setup: Setup | None = None,
) -> None:
    data: dict[str, object] = {"durations": dict(sorted(durations.items()))}
    if files is None:
        files = load_files(path)  # kept as they were
    if files:
        data["files"] = dict(sorted(files.items()))
    if gap is None:
        gap = recorded_gap(path)  # kept as it was
    if gap is not None:
        data["slot"] = {"gap": gap}
    if setup is None:
        setup = recorded_setup(path)  # kept as it was
    if setup is not None:
        data["setup"] = {"base": setup.base, "per_dir": setup.per_dir}
    write_atomic(path, json.dumps(data, indent=2))
