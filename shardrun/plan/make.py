"""The shards a command runs: the config expanded (split groups from the build context's
files and their recorded times), selected by name and ordered longest first."""

from __future__ import annotations

from collections.abc import Sequence

from shardrun.config.spec import Config
from shardrun.model.shard import Shard
from shardrun.plan import timings
from shardrun.plan.affinity import NO_SETUP
from shardrun.plan.expand import expand, order, select
from shardrun.state import layout


def planned(config: Config, patterns: Sequence[str] | None = None, slots: int = 1) -> list[Shard]:
    """`slots`: how many groups a `count = "slots"` split makes."""
    path = config.timings_path
    files, file_times, setup = None, None, NO_SETUP
    if any(spec.split for spec in config.shards):  # the build context's files, to split
        # docker-py's .dockerignore rules: imported only when a split needs them.
        from shardrun.engine.context import context_files

        files = context_files(config.image.context, config.image.dockerfile, exclude=(layout.NAME,))
        file_times = timings.load_files(path)
        setup = timings.load_setup(path)
    selected = select(expand(config, files, file_times, slots, setup), patterns or [])
    return order(selected, timings.load(path))
