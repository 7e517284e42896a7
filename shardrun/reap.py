"""Removing shardrun's containers, always found by label (never by name).

Blocking engine calls: callers run them in threads.
"""

from __future__ import annotations

from shardrun import owner
from shardrun.engine.api import Engine


def remove_run(engine: Engine, run_id: str) -> int:
    """Remove every container of `run_id`: the backstop for every way a run ends."""
    found = engine.containers(f"{owner.LABEL_RUN}={run_id}")
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
        if owner.is_orphan(container.labels, container.state):
            engine.remove(container.id)
            runs.add(container.labels.get(owner.LABEL_RUN, "?"))
    return sorted(runs)
