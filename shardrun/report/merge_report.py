"""A run's report.json, checked field by field: the shape `shardrun merge` reads of a
partition's, and `shardrun show` of any run's.

Only the keys the merge reads are kept, each of its type and range (a bool is no number,
times are finite and plausible, counts whole and bounded), every text is made one line
and cut to a length as a run's intake cuts a JUnit file's, and each shard's recorded
options are read as shards.toml is (state/shard_record.py). What does not hold raises
`Bad`, one phrase naming the key: "shards[3].attempt is 'x', not a whole number...".
A shard's `reused_from` and `reuse_key` (schema 1.1) are checked as strictly as the run
ID: the merge records the passes under that key (`merge --plan`), so a key that is not
one, or a "reused" shard that did not pass, is a damaged report, not a value to guess at.
"""

from __future__ import annotations

import json
import re
import reprlib
from typing import Any

from shardrun.model.results import Status
from shardrun.model.text import one_line
from shardrun.model.transit import CODECS, NONE
from shardrun.state import shard_record
from shardrun.state.foreign import number
from shardrun.state.results_record import KEY

# GitHub allows 256 jobs in a matrix, GitLab's `parallel` 200: room for any CI, and a
# bound on what a merge holds and names (a missing list of a million partitions).
MAX_PARTITIONS = 1024
MAX_SHARDS = 10_000  # shards in all partitions: each was a container
MAX_WORKERS = 1_000  # workers in all partitions
MAX_ATTEMPT = 1_000  # a shard's attempts (`--retries` + 1)
MAX_LABEL = 200  # characters of a project, image, worker or machine name
MAX_TEXT = 1_000  # characters of a detail or a note: junit_intake's MAX_MESSAGE
MAX_PATHS = 10_000  # artifact paths of one shard
OPTIONS_MAX = 256 * 1024  # bytes of one shard's recorded options, as JSON
PHASES_MAX = 64 * 1024  # bytes of one partition's phases, as JSON
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_EPOCH = (0.0, 1e11)  # seconds: a time anyone's clock can give


class Bad(Exception):
    """What is wrong with one field of a report, as a phrase naming it."""


def checked(data: Any) -> tuple[dict[str, Any], int]:
    """The report `data`, checked and cut (see the module), and how many of its shards'
    recorded options could not be read (those shards keep None)."""
    if not isinstance(data, dict):
        raise Bad(f"holds {_show(data)}, not a report")
    place = data.get("partition")
    if not isinstance(place, dict):
        raise Bad("partition is missing: not the report of a partition job (run --partition)")
    total = _whole(place, "total", "partition.", 1, MAX_PARTITIONS)
    report, dropped = _run(data, times=True)
    report["partition"] = {
        "index": _whole(place, "index", "partition.", 1, total),
        "total": total,
        "plan": _text(place, "plan", "partition.", MAX_LABEL, cut=False, optional=False),
        "machine": _text(place, "machine", "partition.", MAX_LABEL),
    }
    return report, dropped


def checked_run(data: Any) -> tuple[dict[str, Any], int]:
    """Any run's report, checked and cut as `checked` does a partition's, its times
    optional (None): what `show` prints the summary from."""
    if not isinstance(data, dict):
        raise Bad(f"holds {_show(data)}, not a report")
    return _run(data, times=False)


def _run(data: dict[str, Any], times: bool) -> tuple[dict[str, Any], int]:
    """Every key but the partition; `times`: the run's start and end must be there."""
    run_id = data.get("run_id")
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise Bad(f"run_id is {_show(run_id)}, not a run ID")
    if not isinstance(data.get("shards"), list):
        raise Bad(f"shards is {_show(data.get('shards'))}, not a list of shards")
    shards, dropped = _list(data, "shards", "", MAX_SHARDS), 0
    entries = []
    for i, raw in enumerate(shards, 1):
        entry = _shard(raw, f"shards[{i}].")
        dropped += raw.get("options") is not None and entry["options"] is None
        entries.append(entry)
    report = {
        "run_id": run_id,
        "project": _text(data, "project", "", MAX_LABEL),
        "image_id": _text(data, "image_id", "", MAX_LABEL),
        "started": _time(data, "started", "", optional=not times),
        "finished": _time(data, "finished", "", optional=not times),
        "exit_code": _maybe_whole(data, "exit_code", "", 0, 255),
        "interrupted": data.get("interrupted") is True,
        "error": _text(data, "error", "", MAX_TEXT) or "",
        "workers": [
            _worker(w, f"workers[{i}].")
            for i, w in enumerate(_list(data, "workers", "", MAX_WORKERS), 1)
        ],
        "phases": _small(data.get("phases"), PHASES_MAX),
        "shards": entries,
    }
    return report, dropped


def _shard(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Bad(f"{where[:-1]} is {_show(raw)}, not a shard")
    name = raw.get("name")
    if not isinstance(name, str) or not shard_record.is_name(name):
        raise Bad(f"{where}name is {_show(name)}, not a shard name")
    status = raw.get("status")
    if not isinstance(status, str) or status not in {s.value for s in Status}:
        raise Bad(f"{where}status is {_show(status)}, not one of {', '.join(Status)}")
    attempt = _maybe_whole(raw, "attempt", where, 1, MAX_ATTEMPT) or 1
    artifacts = _list(raw, "artifacts", where, None)
    reused_from = _matching(raw, "reused_from", where, _RUN_ID, "a run ID")
    if reused_from is not None and status != Status.PASS.value:
        raise Bad(f"{where}reused_from is set, but its status is {status}: only a pass is reused")
    return {
        "name": name,
        "status": status,
        "exit_code": _maybe_whole(raw, "exit_code", where, -(2**31), 2**32),
        "started": _time(raw, "started", where),
        "finished": _time(raw, "finished", where),
        "worker": _text(raw, "worker", where, MAX_LABEL),
        "slot": _maybe_whole(raw, "slot", where, 0, 1_000_000),
        "attempt": attempt,
        "log": _path(raw, "log", where, optional=True),
        "junit": _path(raw, "junit", where, optional=True),
        "artifacts": [
            _path(artifacts, j, f"{where}artifacts") for j in range(min(len(artifacts), MAX_PATHS))
        ],
        "artifacts_cut": max(len(artifacts) - MAX_PATHS, 0),
        "detail": _text(raw, "detail", where, MAX_TEXT) or "",
        "artifacts_note": _text(raw, "artifacts_note", where, MAX_TEXT) or "",
        "image": _text(raw, "image", where, MAX_LABEL),
        "kept": _text(raw, "kept_container", where, MAX_LABEL),
        "options": _options(raw.get("options"), name),
        "reused_from": reused_from,
        "reuse_key": _matching(raw, "reuse_key", where, KEY, '"sha256:" and 64 hex digits'),
    }


def _worker(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Bad(f"{where[:-1]} is {_show(raw)}, not a worker")
    sizes = {k: _maybe_whole(raw, k, where, 0, 2**63) or 0 for k in _SIZES}
    return {
        "name": _text(raw, "name", where, MAX_LABEL, optional=False),
        "url": _text(raw, "url", where, MAX_LABEL) or "",
        "slots": _maybe_whole(raw, "slots", where, 0, 1_000_000) or 0,
        "lost": _text(raw, "lost", where, MAX_TEXT) or "",
        "load": _choice(raw, "load", where, ("", "none", "thin", "full")) or "",
        "load_seconds": _time(raw, "load_seconds", where) or 0.0,
        "required": raw.get("required") is True,
        "load_started": _time(raw, "load_started", where),
        "codec": _choice(raw, "codec", where, CODECS) or NONE,
        **sizes,
    }


_SIZES = ("sent", "full_size", "wire")


def _options(raw: Any, name: str) -> Any:
    """The shard as planned (what `repro` reruns), checked as shards.toml is; None if it
    is not one, or too large to be one."""
    if raw is None or _small(raw, OPTIONS_MAX) is None:
        return None
    try:
        shard = shard_record.from_json(raw)
    except ValueError:  # Refused
        return None
    return shard if shard.name == name else None


def _path(data: Any, key: str | int, where: str, optional: bool = False) -> str | None:
    """A path as the partition's machine had it: mapped into the copied folder later."""
    value = data[key] if isinstance(key, int) else data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        spot = f"[{key + 1}]" if isinstance(key, int) else key
        raise Bad(f"{where}{spot} is {_show(value)}, not a path")
    return value[: 4 * 4096]  # past PATH_MAX: it names no file of the folder anyway


def _list(data: dict, key: str, where: str, most: int | None) -> list:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Bad(f"{where}{key} is {_show(value)}, not a list")
    if most is not None and len(value) > most:
        raise Bad(f"{where}{key} holds {len(value)} entries, over {most}")
    return value


def _maybe_whole(data: dict, key: str, where: str, low: int, high: int) -> int | None:
    return None if data.get(key) is None else _whole(data, key, where, low, high)


def _whole(data: dict, key: str, where: str, low: int, high: int) -> int:
    value = data.get(key)
    if value is None:
        raise Bad(f"{where}{key} is missing")
    # Compared as integers first: a 400-digit number does not fit a float.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Bad(f"{where}{key} is {_show(value)}, not a whole number from {low} to {high}")
    return value


def _time(data: dict, key: str, where: str, optional: bool = True) -> float | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _EPOCH[1]:
        value = None  # too large for a float: out of range below
    seconds = number(value, *_EPOCH)
    if seconds is None:
        raise Bad(f"{where}{key} is {_show(value)}, not a time in seconds")
    return seconds


def _text(
    data: dict, key: str, where: str, most: int, cut: bool = True, optional: bool = True
) -> str | None:
    """A text field, one line, cut to `most` characters (or refused past them, if it
    is a name that must stay whole)."""
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise Bad(f"{where}{key} is {_show(value)}, not a text")
    if len(value) > most and not cut:
        raise Bad(f"{where}{key} is {len(value)} characters long, over {most}")
    # Cut before it is made one line, so a huge value is not copied whole first.
    text = one_line(value[: most + 1])
    return text[:most] + "…" if len(text) > most else text


def _matching(data: dict, key: str, where: str, pattern: re.Pattern, what: str) -> str | None:
    """An optional name that must be whole and of its form: a run ID, a key."""
    value = data.get(key)
    if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
        raise Bad(f"{where}{key} is {_show(value)}, not {what}")
    return value


def _choice(data: dict, key: str, where: str, allowed: tuple[str, ...]) -> str | None:
    value = data.get(key)
    if value is not None and value not in allowed:
        raise Bad(f"{where}{key} is {_show(value)}, not one of {', '.join(map(repr, allowed))}")
    return value


def _small(value: Any, most: int) -> Any:
    """`value` if it is at most `most` bytes as JSON, else None."""
    return value if len(json.dumps(value)) <= most else None


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 40, 40


def _show(value: object) -> str:
    """`value` as a short one-line Python literal: built short, not cut from a huge one."""
    return one_line(_REPR.repr(value))
