"""The record of shards that passed, by the key of what they ran (plan/reuse_key.py), so
that a later run on the same content reports them passed instead of running them again:
`.shardrun/results.json` (layout.results_record), beside timings.json.

    {"version": 1,
     "entries": {"sha256:<key>": {"shard": "unit-1", "run": "<run id>", "finished": <epoch>,
                                  "duration": <seconds>, "image": "<image id>",
                                  "cases": [[classname, name, seconds], ...]}}}

A case is a list, not an object, and `true` is appended to a skipped one's: a record of
many runs of a large suite holds hundreds of thousands of cases, and a CI cache carries
the file every run.

Several writers may meet (runs of one checkout, the partitions and merge of a CI
matrix): `add` and `prune` re-read and merge under the file's lock and write it
atomically, so none loses another's entries. A CI cache or artifact may carry it from
anywhere: it is read as a foreign file (state/foreign.py). A file that cannot be read as
a whole (too big, not JSON, too deep, another version) is no record; an entry of a
readable file that is damaged is left out and the others are kept, since each is checked
whole on its own and the worst a missing one costs is running that shard again. Either
way `load` says so in one line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.state import files, foreign
from shardrun.state.foreign import Refused
from shardrun.state.shard_record import is_name

VERSION = 1
RECORD_MAX = 64_000_000  # bytes: read no more, and write no more, than this
MAX_ENTRIES = 20_000  # the newest are kept
MAX_CASES = 10_000  # per entry: as many passing cases as the JUnit intake keeps of a shard
MAX_TEXT = 1_000  # characters of a name, run ID, image or case name (the intake keeps 500)
MAX_SECONDS = 1e7  # a duration: 115 days, beyond any timeout (plan/timings.py's bound)
MAX_EPOCH = 1e11  # a time: the year 5138, well past any clock that is right
_DEPTH = 5  # top, entries, an entry, its cases, a case
KEY = re.compile(r"sha256:[0-9a-f]{64}")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # as report/history.py reads one
# What XML 1.0 cannot carry (the cases go back into junit.xml) and lone surrogates (no
# UTF-8 writer can write them): a text holding any is damage.
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_THEN = "shards it records run again, and the next run writes it anew"


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    time: float
    skipped: bool = False


@dataclass(frozen=True)
class Passed:
    """A shard that passed: under `key`, what a reuse reports: which shard, in which run
    (its ID), when it finished (epoch seconds), how long it took, on which image (its ID
    in that run), and its test cases, so a reused shard's JUnit stays complete."""

    key: str
    shard: str
    run: str
    finished: float
    duration: float
    image: str
    cases: tuple[Case, ...] = ()


def load(path: Path) -> tuple[dict[str, Passed], str]:
    """The entries of the record at `path` by key, and "" or the one line saying what of
    it was ignored and why (naming the file). A missing file is no entries and no line."""
    try:
        data = foreign.read_bytes(path, RECORD_MAX, within=path.parent)
    except FileNotFoundError:
        return {}, ""
    except OSError as exc:  # Refused is a ValueError, so this is the system's own
        return {}, _ignoring(path, exc.strerror or type(exc).__name__)
    except Refused as exc:
        return {}, _ignoring(path, str(exc))
    except RuntimeError:  # foreign.inside's Path.resolve on a loop of links, before 3.13
        return {}, _ignoring(path, "a symbolic link that loops, not a regular file")
    try:
        document = foreign.parse_json(data, _DEPTH)
        entries = _entries(document)
    except Refused as exc:
        return {}, _ignoring(path, str(exc))
    found: dict[str, Passed] = {}
    first_bad = ""
    for key, raw in entries.items():
        try:
            found[key] = _entry(key, raw)
        except Refused as exc:
            first_bad = first_bad or str(exc)
    bad = len(entries) - len(found)
    if not bad:
        return found, ""
    what = f"{bad} of its {len(entries)} entries ({first_bad})"
    return found, f"ignoring {what} in {path}; those shards run again"


def add(path: Path, entries: Iterable[Passed]) -> None:
    """Record `entries`, merged with what the file holds now (of two entries under one
    key, the one that finished later stays), keeping the newest MAX_ENTRIES. An entry
    that `load` would refuse (over MAX_CASES cases, a name over MAX_TEXT characters, a
    time that is not one) is left out: that shard runs again next time."""
    new = [checked for passed in entries if (checked := _checked(passed)) is not None]
    if not new:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.exclusive(path):
        record, _ = load(path)  # what another writer added since this run read it
        for passed in new:
            old = record.get(passed.key)
            if old is None or passed.finished >= old.finished:
                record[passed.key] = passed
        _write(path, record.values())


def prune(path: Path, older_than: float) -> int:
    """Remove the entries that finished before `older_than` (epoch seconds); how many
    went. For `shardrun clean`."""
    if not os.path.lexists(path):
        return 0
    with files.exclusive(path):
        record, _ = load(path)
        kept = [passed for passed in record.values() if passed.finished >= older_than]
        dropped = len(record) - len(kept)
        if dropped:
            _write(path, kept)
    return dropped


# ---- reading -----------------------------------------------------------------------------


def _ignoring(path: Path, why: str) -> str:
    return f"ignoring {path}: {why}; {_THEN}"


def _entries(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise Refused(f"holds {_kind(document)}, not a record of results")
    version = document.get("version")
    if type(version) is not int or version != VERSION:
        raise Refused(f"version {_shown(version)}, not {VERSION}, the one this shardrun reads")
    entries = document.get("entries")
    if not isinstance(entries, dict):
        raise Refused(f"its entries are {_kind(entries)}, not an object")
    if len(entries) > MAX_ENTRIES:
        raise Refused(f"{len(entries)} entries, over the {MAX_ENTRIES} shardrun keeps")
    return entries


def _entry(key: str, raw: Any) -> Passed:
    if not KEY.fullmatch(key):
        raise Refused(f"{_shown(key)} is not a key")
    if not isinstance(raw, dict):
        raise Refused(f"the entry of {key[:15]}... is {_kind(raw)}, not an object")
    shard, run = raw.get("shard"), raw.get("run")
    if not is_name(shard):
        raise Refused(f"{_shown(shard)} is not a shard name")
    if not isinstance(run, str) or not _RUN_ID.fullmatch(run):
        raise Refused(f"{_shown(run)} is not a run ID")
    cases = raw.get("cases", [])
    if not isinstance(cases, list) or len(cases) > MAX_CASES:
        what = f"{len(cases)} cases" if isinstance(cases, list) else _kind(cases)
        raise Refused(f"the cases of {shard} are {what}, not a list of at most {MAX_CASES}")
    return Passed(
        key=key,
        shard=shard,
        run=run,
        finished=_seconds(raw.get("finished"), MAX_EPOCH, f"{shard}'s finished"),
        duration=_seconds(raw.get("duration"), MAX_SECONDS, f"{shard}'s duration"),
        image=_text(raw.get("image"), f"{shard}'s image"),
        cases=tuple(_case(case, shard) for case in cases),
    )


def _case(raw: Any, shard: str) -> Case:
    if (
        not isinstance(raw, list)
        or len(raw) not in (3, 4)
        or (len(raw) == 4 and raw[3] is not True)
    ):
        raise Refused(f"a case of {shard} is {_shown(raw)}, not [classname, name, seconds]")
    return Case(
        classname=_text(raw[0], f"a classname of {shard}"),
        name=_text(raw[1], f"a case name of {shard}"),
        time=_seconds(raw[2], MAX_SECONDS, f"a case time of {shard}"),
        skipped=len(raw) == 4,
    )


def _seconds(value: Any, most: float, what: str) -> float:
    seconds = foreign.number(value, 0, most)
    if seconds is None:
        raise Refused(f"{what} is {_shown(value)}, not a number of seconds from 0 to {most:g}")
    return seconds


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or _UNWRITABLE.search(value):
        raise Refused(f"{what} is {_shown(value)}, not a text of at most {MAX_TEXT} characters")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _shown(value: Any) -> str:
    text = ascii(value)  # a foreign file's text, shown escaped: one line, no control codes
    return text if len(text) <= 60 else text[:57] + "..."


# ---- writing -----------------------------------------------------------------------------


def entry_json(passed: Passed) -> dict[str, Any]:
    """An entry as the record (and a plan's reused list) writes it, with its key."""
    return {"key": passed.key, **_as_json(passed)}


def entry_from_json(raw: Any) -> Passed:
    """An entry entry_json wrote, every field checked; Refused (a phrase) if it is not."""
    key = raw.get("key") if isinstance(raw, dict) else None
    if not isinstance(key, str):
        raise Refused(f"{_shown(raw)} is not an entry of passed shards")
    return _entry(key, raw)


def _as_json(passed: Passed) -> dict[str, Any]:
    return {
        "shard": passed.shard,
        "run": passed.run,
        "finished": passed.finished,
        "duration": passed.duration,
        "image": passed.image,
        "cases": [
            [c.classname, c.name, c.time, True] if c.skipped else [c.classname, c.name, c.time]
            for c in passed.cases
        ],
    }


def _checked(passed: Passed) -> Passed | None:
    """`passed` as `load` would read it back, or None if it would refuse it."""
    try:
        return _entry(passed.key, _as_json(passed)) if isinstance(passed.key, str) else None
    except (Refused, TypeError):  # TypeError: a case that is not a Case
        return None


def _write(path: Path, entries: Iterable[Passed]) -> None:
    """The newest entries that fit in MAX_ENTRIES and RECORD_MAX bytes, newest first. Put
    together entry by entry, so each one's size is known before it is taken."""
    head, tail = f'{{"version":{VERSION},"entries":{{', "}}"
    size = len(head) + len(tail)
    parts: list[str] = []
    for passed in sorted(entries, key=lambda p: p.finished, reverse=True):
        if len(parts) == MAX_ENTRIES:
            break
        body = json.dumps(_as_json(passed), ensure_ascii=False, separators=(",", ":"))
        part = f'"{passed.key}":{body}'
        cost = len(part.encode()) + 1  # and its comma
        if size + cost > RECORD_MAX:
            continue  # one huge entry does not push out all the older, smaller ones
        parts.append(part)
        size += cost
    files.write_atomic(path, head + ",".join(parts) + tail)
