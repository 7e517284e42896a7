"""Removing shardrun's containers, always found by label (never by name).

A failed shard's container kept with `--keep-failed` is the one exception: it is renamed
`shardrun-kept-...`, and only `shardrun clean` removes it, not a run's end nor an orphan
sweep. Blocking engine calls: callers run them in threads.
"""

from __future__ import annotations

from dataclasses import dataclass

from shardrun.engine.api import Engine
from shardrun.model import owner


def remove_run(engine: Engine, run_id: str) -> int:
    """Remove every container of `run_id`: the backstop for every way a run ends."""
    found = [c for c in engine.containers(f"{owner.LABEL_RUN}={run_id}") if not is_kept(c.name)]
    for container in found:
        engine.remove(container.id)
    return len(found)


KEPT_PREFIX = "shardrun-kept-"


def is_kept(name: str) -> bool:
    return name.startswith(KEPT_PREFIX)


@dataclass(frozen=True)
class Swept:
    removed: int = 0
    spared: int = 0  # left because their runner is alive, or kept too recently


def remove_for_clean(engine: Engine, every: bool, force: bool, kept_before: float) -> Swept:
    """`shardrun clean`: the containers kept by --keep-failed before `kept_before` (epoch
    seconds); with `every`, also every other container with shardrun's labels, of any
    project, whose runner is provably gone. `force` removes them all, live ones too.

    A live run's or repro's containers carry their runner's owner labels, and that runner
    is alive: removing them would fail its shards with no hint why.
    """
    removed = spared = 0
    for container in engine.containers(owner.LABEL_RUN):
        if is_kept(container.name):
            gone = force or container.created < kept_before
        elif every:
            gone = force or owner.is_orphan(container.labels, container.state)
        else:
            continue
        if gone:
            engine.remove(container.id)
            removed += 1
        else:
            spared += 1
    return Swept(removed, spared)


def remove_unused_tags(engine: Engine, project: str, used: set[str]) -> tuple[int, int]:
    """Remove the project's content tags that no remaining run names (`used`: content
    tags): how many, and the bytes of the images that went with them."""
    count, gone = 0, {}
    for tagged in engine.content_tags(project):
        if tagged.tag.removeprefix("docker.io/") in used:
            continue
        engine.untag(tagged.tag)
        count += 1
        if not engine.has_image(tagged.image_id):
            gone[tagged.image_id] = tagged.size
    return count, sum(gone.values())


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
