"""`shardrun workers`: what every worker is, whether it answers, whether it has the image."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import anyio
from anyio import to_thread

from shardrun import reap, workers
from shardrun.config import WorkerSpec
from shardrun.engine import ENGINE_FAILURES, Endpoint
from shardrun.errors import InfraError


@dataclass(frozen=True)
class WorkerRow:
    name: str
    url: str
    reachable: bool
    error: str = ""
    version: str = ""
    cpus: int = 0
    slots: int = 0
    has_image: bool | None = None  # None: no image built yet, or unreachable


def _probe(spec: WorkerSpec, endpoint: Endpoint, name: str, image_id: str | None) -> WorkerRow:
    try:
        worker = workers.connect(spec, endpoint, name)
    except InfraError as exc:
        return WorkerRow(name, endpoint.url, reachable=False, error=str(exc))
    try:
        with contextlib.suppress(*ENGINE_FAILURES):  # like every command, reap orphans first
            reap.remove_orphans(worker.engine)
        # By ID or by content tag: on the containerd image store the ID is another.
        has = worker.engine.find_image(image_id, None) is not None if image_id else None
    finally:
        worker.engine.close()
    return WorkerRow(name, endpoint.url, True, "", worker.version, worker.cpus, worker.slots, has)


async def survey(
    resolved: list[tuple[WorkerSpec, Endpoint, str]], image_id: str | None
) -> list[WorkerRow]:
    rows: dict[int, WorkerRow] = {}

    async def one(index: int, spec: WorkerSpec, endpoint: Endpoint, name: str) -> None:
        rows[index] = await to_thread.run_sync(_probe, spec, endpoint, name, image_id)

    async with anyio.create_task_group() as tg:
        for index, (spec, endpoint, name) in enumerate(resolved):
            tg.start_soon(one, index, spec, endpoint, name)
    return [rows[i] for i in sorted(rows)]
