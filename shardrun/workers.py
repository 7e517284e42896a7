"""Workers: connected docker engines with a number of slots for concurrent containers."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import docker
from anyio import to_thread

from shardrun import engine
from shardrun.config import Volume

_PING_TIMEOUT = 10  # seconds: a worker that cannot answer a ping in this long is lost


@dataclass
class Worker:
    name: str
    endpoint: engine.Endpoint
    client: docker.DockerClient = field(repr=False)
    slots: int
    cpus: int
    version: str
    volumes: tuple[Volume, ...] = ()

    async def is_alive(self) -> bool:
        def ping() -> bool:
            try:
                return bool(self.client.api._get(
                    self.client.api._url("/_ping"), timeout=_PING_TIMEOUT
                ).ok)
            except Exception:  # noqa: BLE001 - any transport error means not reachable
                return False

        with anyio.CancelScope(shield=True):
            return await to_thread.run_sync(ping, abandon_on_cancel=True)


def connect(endpoint: engine.Endpoint, slots: int | None, concurrency_hint: int = 8) -> Worker:
    """Connect and read the engine's facts. Blocking; raises InfraError if unreachable."""
    client = engine.connect(endpoint, concurrency=slots or concurrency_hint)
    info = client.info()
    return Worker(
        name=endpoint.name,
        endpoint=endpoint,
        client=client,
        slots=slots or int(info.get("NCPU") or 1),
        cpus=int(info.get("NCPU") or 1),
        version=str(info.get("ServerVersion", "?")),
    )
