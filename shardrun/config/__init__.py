"""Stage 1, config: shards.toml (or [tool.shardrun]) read and checked into frozen specs."""
