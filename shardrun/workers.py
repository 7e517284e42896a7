"""Workers: connected docker engines, each with slots for concurrent containers."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import docker
from anyio import to_thread

from shardrun import engine
from shardrun.config import Volume, WorkerSpec
from shardrun.errors import ConfigError

_PING_TIMEOUT = 10  # seconds: a worker that cannot answer a ping in this long is lost
_CONNECT_TIMEOUT = 15  # seconds for the first answer; an unreachable host fails this fast
_CALL_TIMEOUT = 300  # seconds for later calls (a big image's save or load is slow)
# sshd's default MaxSessions is 10 and each API stream is a channel of one SSH connection:
# we keep at most this many blocking calls open per ssh worker.
_SSH_STREAMS = 9

DEFAULT = WorkerSpec(name=None, context="default", host=None, slots=None)


@dataclass
class Worker:
    name: str
    endpoint: engine.Endpoint
    client: docker.DockerClient = field(repr=False)
    slots: int
    cpus: int
    version: str
    volumes: tuple[Volume, ...] = ()
    limiter: anyio.CapacityLimiter | None = field(default=None, repr=False)
    lost: str = ""  # why the worker was lost, once it is
    delivery: object | None = None  # distribute.Delivery, once the image is there
    _ready: anyio.Event | None = field(default=None, repr=False)
    _ok: bool = False

    def start_run(self) -> None:
        """Prepare the per-run primitives; called in the event loop."""
        size = _SSH_STREAMS if self.endpoint.url.startswith("ssh://") else 4 * self.slots + 8
        self.limiter = anyio.CapacityLimiter(size)
        self._ready = anyio.Event()

    def set_ready(self, ok: bool) -> None:
        self._ok = ok
        self._ready.set()

    async def wait_ready(self) -> bool:
        await self._ready.wait()
        return self._ok

    async def is_alive(self) -> bool:
        def ping() -> bool:
            try:
                api = self.client.api
                return bool(api._get(api._url("/_ping"), timeout=_PING_TIMEOUT).ok)
            except Exception:  # noqa: BLE001 - any transport error means not reachable
                return False

        with anyio.CancelScope(shield=True):
            return await to_thread.run_sync(ping, abandon_on_cancel=True)


def resolve(specs: tuple[WorkerSpec, ...]) -> list[tuple[WorkerSpec, engine.Endpoint, str]]:
    """Each spec's endpoint and a unique display name. Raises ConfigError (no I/O)."""
    resolved = []
    seen: dict[str, int] = {}
    for spec in specs:
        endpoint = engine.resolve(spec.context or spec.host)
        name = spec.name or endpoint.name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            if spec.name:
                raise ConfigError(f"worker name {name!r} is used twice; give each a unique name")
            name = f"{name}#{seen[name]}"
        resolved.append((spec, endpoint, name))
    return resolved


def connect(spec: WorkerSpec, endpoint: engine.Endpoint, name: str) -> Worker:
    """Connect and read the engine's facts. Blocking; raises InfraError if unreachable."""
    client = engine.connect(endpoint, concurrency=spec.slots or 64, timeout=_CONNECT_TIMEOUT)
    info = client.info()
    client.api.timeout = _CALL_TIMEOUT
    cpus = int(info.get("NCPU") or 1)
    return Worker(
        name=name,
        endpoint=endpoint,
        client=client,
        slots=spec.slots or cpus,
        cpus=cpus,
        version=str(info.get("ServerVersion", "?")),
        volumes=spec.volumes,
    )
