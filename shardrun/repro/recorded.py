"""A shard as it ran in a past run, found in that run's report.json (what `repro`
reruns), or picked by name from the config. Pure file reading: no engine here, so the
unit tests (which run without docker-py) use it."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard
from shardrun.report import history
from shardrun.state.shard_record import from_json


@dataclass(frozen=True)
class Recorded:
    """A shard as it ran in a past run: its options, and the image of that run."""

    run_id: str
    shard: Shard
    image_id: str
    worker: str | None  # the worker's name in that run
    worker_url: str | None


def find_recorded(state_dir: Path, name: str, run_id: str | None) -> Recorded | str:
    """The shard as it ran in run `run_id`, or in the latest run where it ran; else why
    not, in words for a one-line note."""
    if run_id is not None:
        candidates = [run_id]
    else:
        candidates = history.run_ids(state_dir)
        if not candidates:
            return f"{name} has not run yet"
    for candidate in candidates:
        try:
            past = history.load(state_dir, candidate)
        except ConfigError:
            if run_id is not None:
                raise
            continue
        entry = past.shard(name)
        if entry is None:
            continue
        image_id, options = past.report.get("image_id"), entry.get("options")
        if not image_id or not isinstance(options, dict):
            return f"run {past.run_id} did not record {name}'s options (an older shardrun)"
        try:
            shard = from_json(options)
        except ValueError as exc:  # Refused: a hand-edited or damaged record
            return f"run {past.run_id}'s record of {name} cannot be read ({exc})"
        if shard.name != name:
            return f"run {past.run_id}'s record of {name} is of another shard"
        urls = {w.get("name"): w.get("url") for w in past.report.get("workers", [])}
        return Recorded(
            past.run_id, shard, image_id, entry.get("worker"), urls.get(entry.get("worker"))
        )
    where = f"run {run_id}" if run_id else "any recorded run"
    return f"{name} did not run in {where}"


def pick(shards: Sequence[Shard], name: str) -> Shard:
    """The one shard called `name`; a near miss names the closest ones."""
    for shard in shards:
        if shard.name == name:
            return shard
    close = difflib.get_close_matches(name, [s.name for s in shards], n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f'repro "{name}": no such shard; {hint}shardrun list shows the names')
