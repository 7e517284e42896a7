"""Splits the unit tests into shards when SHARDRUN_SHARD=INDEX/TOTAL is set (shards.toml).

A few lines here rather than a plugin: the test image has only pytest and rich.
"""

import os


def pytest_collection_modifyitems(config, items):
    shard = os.environ.get("SHARDRUN_SHARD")
    if not shard:
        return
    index, total = (int(part) for part in shard.split("/"))
    keep = [item for n, item in enumerate(items) if n % total == index - 1]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep
