"""Removing shardrun's containers, always found by label (never by name).

A failed shard's container kept with `--keep-failed` is the one exception: it is renamed
`shardrun-kept-...`, and only `shardrun clean` removes it, not a run's end nor an orphan
sweep. Blocking engine calls: callers run them in threads.
"""

from __future__ import annotations

from shardrun.cleanup import owner
from shardrun.engine.api import Engine


def remove_run(engine: Engine, run_id: str) -> int:
    """Remove every container of `run_id`: the backstop for every way a run ends."""
    found = [c for c in engine.containers(f"{owner.LABEL_RUN}={run_id}") if not is_kept(c.name)]
    for container in found:
        engine.remove(container.id)
    return len(found)


KEPT_PREFIX = "shardrun-kept-"


def is_kept(name: str) -> bool:
    return name.startswith(KEPT_PREFIX)


def remove_all(engine: Engine, kept_only: bool = False) -> int:
    """`shardrun clean`: every container with shardrun's labels (or only kept ones), of any
    project and in any state, running ones too."""
    found = [c for c in engine.containers(owner.LABEL_RUN) if is_kept(c.name) or not kept_only]
    for container in found:
        engine.remove(container.id)
    return len(found)


def remove_orphans(engine: Engine) -> list[str]:
    """Remove the containers whose runner is gone or whose deadline has passed, of any
    project and in any state; a live run's containers stay. Returns their run IDs.

    Every command calls this on each engine it uses before it starts anything there,
    so a runner killed with SIGKILL leaves nothing for long.
    """
    runs = set()
    for container in engine.containers(owner.LABEL_RUN):
        if not is_kept(container.name) and owner.is_orphan(container.labels, container.state):
            engine.remove(container.id)
            runs.add(container.labels.get(owner.LABEL_RUN, "?"))
    return sorted(runs)
