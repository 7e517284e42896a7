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


def in_config(
    config: Config, shards: Sequence[Shard], content: str, environ: Mapping[str, str]
) -> tuple[dict[str, Passed], str]:
    """passed_before for a command with no run of its own (`build --partitions`, `list`):
    the config's workers, the record in its state folder, the secrets `environ` holds (a
    secret it lacks keys its shard as unset, so that shard is not reused: safe)."""
    secrets = {n: environ[n] for s in shards for n in s.secret_env if n in environ}
    record = layout.results_record(layout.state_dir(config.root))
    volumes = any(spec.volumes for spec in config.workers)
    _, earlier, warning = passed_before(shards, content, secrets, record, volumes)
    return earlier, warning


def would_reuse(
    config: Config, shards: Sequence[Shard], environ: Mapping[str, str]
) -> dict[str, Passed]:
    """For `list`: the shards a run would reuse if it builds an image of the latest
    content again (nothing is built or contacted to find out)."""
    content = latest_image.read_content(layout.state_dir(config.root))
    return in_config(config, shards, content, environ)[0] if content is not None else {}
