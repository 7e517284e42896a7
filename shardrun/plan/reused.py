"""Which shards passed before on an image's content (plan/reuse_key.py keys them, the
record in state/results_record.py holds the passes): what a run, a matrix's plan and
`list` leave out. Reading only: run/reuse.py settles and records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from shardrun.config.spec import Config
from shardrun.model.shard import Shard
from shardrun.plan import reuse_key
from shardrun.state import latest_image, layout, results_record
from shardrun.state.results_record import Passed


def passed_before(
    shards: Sequence[Shard],
    content: str,
    secrets: Mapping[str, str],
    record: Path,
    worker_volumes: bool,
) -> tuple[dict[str, str], dict[str, Passed], str]:
    """The key of each shard that may be reused, the record's entry of each that passed
    before (by shard name), and a warning about the record ("" if none). Blocking."""
    keys = {
        s.name: reuse_key.shard_key(s, content, secrets)
        for s in shards
        if reuse_key.eligible(s, worker_volumes)
    }
    if not keys:
        return keys, {}, ""
    passed, warning = results_record.load(record)
    return keys, {name: passed[key] for name, key in keys.items() if key in passed}, warning


def would_reuse(
    config: Config, shards: Sequence[Shard], environ: Mapping[str, str]
) -> dict[str, Passed]:
    """For `list`: the shards a run would reuse if it builds an image of the latest
    content again (nothing is built or contacted to find out)."""
    state = layout.state_dir(config.root)
    content = latest_image.read_content(state)
    if content is None:
        return {}
    secrets = {n: environ[n] for s in shards for n in s.secret_env if n in environ}
    volumes = any(spec.volumes for spec in config.workers)
    return passed_before(shards, content, secrets, layout.results_record(state), volumes)[1]
