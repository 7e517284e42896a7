"""`run --failed`: the shards that did not pass in an earlier run, as they ran then."""

from __future__ import annotations

from collections.abc import Sequence

from shardrun.config.spec import Config
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard, from_json
from shardrun.report import history
from shardrun.state import layout


def only_failed(
    config: Config, shards: Sequence[Shard], run_id: str | None
) -> tuple[str, tuple[Shard, ...]]:
    """(the run read, the shards that failed, timed out or errored there); none if none did.

    A split shard reruns the files it had then, not this plan's group of the same name.
    """
    past = history.load(layout.state_dir(config.root), run_id)
    names = past.failed_names()
    if not names:
        return past.run_id, ()
    recorded = {
        s.name: from_json(opts)
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
