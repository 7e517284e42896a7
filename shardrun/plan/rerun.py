"""`run --failed`: the shards that did not pass in an earlier run, as they ran then."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard
from shardrun.state.shard_record import from_json, on_this_host


class PastRun(Protocol):
    """What of a past run this needs (report.history.PastRun reads it): the plan stays
    below the reports that record what happened."""

    @property
    def run_id(self) -> str: ...

    def failed_names(self) -> set[str]: ...

    def shard(self, name: str) -> dict[str, Any] | None: ...


def only_failed(past: PastRun, shards: Sequence[Shard]) -> tuple[str, tuple[Shard, ...]]:
    """(the run read, the shards that failed, timed out or errored there); none if none did.

    A split shard reruns the files it had then, not this plan's group of the same name:
    its command as recorded, but what reaches outside its container (mounts, the Docker
    socket) as the config has it now (shard_record.on_this_host), since a report is a
    file anyone can edit, or download from a CI run.
    """
    names = past.failed_names()
    if not names:
        return past.run_id, ()
    recorded = {
        s.name: _recorded(past.run_id, s, opts)
        for s in shards
        if s.name in names and s.files and (opts := (past.shard(s.name) or {}).get("options"))
    }
    chosen = tuple(recorded.get(s.name, s) for s in shards if s.name in names)
    if not chosen:
        raise ConfigError(
            f"none of the shards that failed in run {past.run_id} "
            f"({', '.join(sorted(names)[:5])}) is in the config any more"
        )
    return past.run_id, chosen


def _recorded(run_id: str, config: Shard, options: object) -> Shard:
    try:
        return on_this_host(from_json(options), config)
    except ValueError as exc:
        raise ConfigError(
            f"run {run_id}'s record of {config.name} cannot be rerun ({exc}); "
            f"run the current group with --shard {config.name}"
        ) from None
