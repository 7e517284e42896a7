"""The files of the build context, as a `split` shares them out: what the plan is given
(it never reads the context itself, and docker-py's `.dockerignore` rules stay in engine/).
"""

from __future__ import annotations

from shardrun.config.spec import Config
from shardrun.state import layout


def split_files(config: Config) -> list[str] | None:
    """The context's files after `.dockerignore` (never the state folder), when a shard
    splits them; None when none does, and nothing is read."""
    if not any(spec.split for spec in config.shards):
        return None
    # docker-py, imported only when a split needs its rules: `list` stays light.
    from shardrun.engine.context import context_files

    image = config.image
    return context_files(image.context, image.dockerfile, exclude=(layout.NAME,))
