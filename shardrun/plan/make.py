"""The shards a command runs: the config expanded (split groups from the build context's
files and their recorded times), selected by name and ordered longest first."""

from __future__ import annotations

from collections.abc import Sequence

from shardrun.config.spec import Config
from shardrun.model.shard import Shard
from shardrun.plan import timings
from shardrun.plan.affinity import NO_SETUP
from shardrun.plan.expand import expand, order, select


def planned(
    config: Config,
    patterns: Sequence[str] | None = None,
    slots: int = 1,
    files: Sequence[str] | None = None,
) -> list[Shard]:
    """`slots`: how many groups a `count = "slots"` split makes; `files`: the build
    context's files a split shares out (image/context_files.py), needed when one does."""
    path = config.timings_path
    file_times, setup = None, NO_SETUP
    if any(spec.split for spec in config.shards):
        if files is None:
            raise ValueError("a split needs the build context's files")  # a caller's bug
        file_times = timings.load_files(path)
        setup = timings.load_setup(path)
    selected = select(
        expand(config, None if files is None else list(files), file_times, slots, setup),
        patterns or [],
    )
    return order(selected, timings.load(path))
