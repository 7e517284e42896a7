"""One shard in one container: create, attach, wait, collect, remove."""
