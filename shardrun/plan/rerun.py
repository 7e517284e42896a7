"""`run --failed`: the shards that did not pass in an earlier run, as they ran then."""

from __future__ import annotations

from collections.abc import Sequence

from shardrun.config.spec import Config
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard
from shardrun.report import history
from shardrun.state import layout
from shardrun.state.shard_record import from_json, on_this_host


def only_failed(
    config: Config, shards: Sequence[Shard], run_id: str | None
) -> tuple[str, tuple[Shard, ...]]:
    """(the run read, the shards that failed, timed out or errored there); none if none did.

    A split shard reruns the files it had then, not this plan's group of the same name:
    its command as recorded, but what reaches outside its container (mounts, the Docker
    socket) as the config has it now (shard_record.on_this_host), since a report is a
    file anyone can edit, or download from a CI run.
    """
    past = history.load(layout.state_dir(config.root), run_id)
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
