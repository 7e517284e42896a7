"""Removing shardrun's containers, always found by label (never by name).

Blocking docker-SDK calls: callers run them in threads.
"""

from __future__ import annotations

import docker

from shardrun import owner


def remove_run(client: docker.DockerClient, run_id: str) -> int:
    """Remove every container of `run_id`: the backstop for every way a run ends."""
    found = client.api.containers(all=True, filters={"label": f"{owner.LABEL_RUN}={run_id}"})
    for container in found:
        _remove(client, container["Id"])
    return len(found)


def remove_orphans(client: docker.DockerClient) -> list[str]:
    """Remove the containers whose runner is gone or whose deadline has passed, of any
    project and in any state; a live run's containers stay. Returns their run IDs.

    Every command calls this on each engine it uses before it starts anything there,
    so a runner killed with SIGKILL leaves nothing for long.
    """
    found = client.api.containers(all=True, filters={"label": owner.LABEL_RUN})
    runs = []
    for container in found:
        labels = container.get("Labels") or {}
        if owner.is_orphan(labels, container.get("State", "")):
            _remove(client, container["Id"])
            runs.append(labels.get(owner.LABEL_RUN, "?"))
    return sorted(set(runs))


def _remove(client: docker.DockerClient, container_id: str) -> None:
    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.APIError as exc:
        # Gone already (404), or its removal is under way (409): either way it goes.
        if exc.status_code not in (404, 409):
            raise
