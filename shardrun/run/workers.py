"""Workers: connected docker engines, each with slots for concurrent containers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from anyio import to_thread

from shardrun.config.spec import WorkerSpec
from shardrun.engine import endpoints
from shardrun.engine.api import Engine
from shardrun.engine.endpoints import SSH_CALLS, Endpoint
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Volume
from shardrun.run.request import Connect, real_engine

if TYPE_CHECKING:  # distribute imports this module's neighbours; the type is all we need
    from shardrun.distribute.deliver import Delivery

_PING_TIMEOUT = 5  # seconds: a ping not answered in this long has failed
_BEAT, _MISSES = 2.0, 2  # ping every 2 s; 2 failures in a row and the worker is lost
_CONNECT_TIMEOUT = 15  # seconds for the first answer; an unreachable host fails this fast
# Seconds for later calls. Long ones set their own: builds and loads none, and log streams
# have their socket timeout lifted by docker-py. A call to a host cut off from the network
# fails after this long, and a shard cancelled by a lost worker waits out its create.
_CALL_TIMEOUT = 60


@dataclass
class Worker:
    name: str
    endpoint: Endpoint
    engine: Engine = field(repr=False)
    slots: int
    cpus: int
    version: str
    volumes: tuple[Volume, ...] = ()
    target: str = "default"  # the context name or URL it was given, to reach it again
    containerd_store: bool = False  # images in containerd's store: see distribute
    required: bool = False  # a run that loses it fails (exit 4)
    compress: str = "auto"  # the [[worker]]'s compress setting
    limiter: anyio.CapacityLimiter | None = field(default=None, repr=False)
    lost: str = ""  # why the worker was lost, once it is
    engines: Connect = field(default=real_engine, repr=False)  # what connected it: for slots
    delivery: Delivery | None = None  # how the image got there, once it has
    _ready: anyio.Event | None = field(default=None, repr=False)
    _ok: bool = False
    _slot_engines: dict = field(default_factory=dict, repr=False)
    _running: set = field(default_factory=set, repr=False)  # cancel scopes of running shards

    @property
    def over_ssh(self) -> bool:
        return self.endpoint.url.startswith("ssh://")

    def start_run(self) -> None:
        """Prepare the per-run primitives; called in the event loop."""
        self.limiter = anyio.CapacityLimiter(SSH_CALLS if self.over_ssh else 4 * self.slots + 8)
        self._ready = anyio.Event()
        self._slot_engines = {}

    async def slot_engine(self, slot: int) -> tuple[Engine, anyio.CapacityLimiter]:
        """The engine connection and call limiter a slot uses. Over ssh each slot has its
        own SSH connection, since one carries only 10 sessions (sshd's MaxSessions)."""
        assert self.limiter is not None, "start_run() first"
        if not self.over_ssh:
            return self.engine, self.limiter
        if slot not in self._slot_engines:
            connection = await to_thread.run_sync(
                self.engines, self.endpoint, 1, _CALL_TIMEOUT, None, abandon_on_cancel=True
            )
            self._slot_engines[slot] = (connection, anyio.CapacityLimiter(SSH_CALLS))
        return self._slot_engines[slot]

    def set_ready(self, ok: bool) -> None:
        assert self._ready is not None, "start_run() first"
        self._ok = ok
        self._ready.set()

    async def wait_ready(self) -> bool:
        assert self._ready is not None, "start_run() first"
        await self._ready.wait()
        return self._ok

    def mark_lost(self, reason: str) -> bool:
        """Record the loss and cancel the shards running here; False if already lost."""
        if self.lost:
            return False
        self.lost = reason
        for scope in self._running:
            scope.cancel()
        return True

    @contextlib.contextmanager
    def unless_lost(self) -> Iterator[anyio.CancelScope]:
        """A scope cancelled if the worker is lost, for a shard running on it."""
        scope = anyio.CancelScope()
        if self.lost:
            scope.cancel()
        self._running.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._running.discard(scope)

    async def watch(
        self,
        on_lost: Callable[[Worker, str], object],
        interval: float = _BEAT,
        misses: int = _MISSES,
    ) -> None:
        """Ping the engine while the run lasts. A daemon that dies resets its connections,
        but a host cut off from the network leaves a container wait hanging silently:
        only a heartbeat notices that."""
        failed = 0
        while not self.lost:
            await anyio.sleep(interval)
            failed = 0 if await self.is_alive() else failed + 1
            if failed >= misses:
                on_lost(self, f"no answer to {misses} pings in a row")
                return

    async def is_alive(self) -> bool:
        if self.lost:
            return False

        with anyio.CancelScope(shield=True):
            alive = await to_thread.run_sync(
                self.engine.ping, _PING_TIMEOUT, abandon_on_cancel=True
            )
        return alive


def resolve(specs: tuple[WorkerSpec, ...]) -> list[tuple[WorkerSpec, Endpoint, str]]:
    """Each spec's endpoint and a unique display name. Raises ConfigError (no I/O).

    Explicit names are reserved first, so a generated "x#2" never takes one of them.
    """
    taken: set[str] = set()
    for spec in specs:
        if spec.name in taken:
            raise ConfigError(f"worker name {spec.name!r} is used twice; give each a unique name")
        if spec.name:
            taken.add(spec.name)
    resolved = []
    for spec in specs:
        endpoint = endpoints.resolve(spec.context or spec.host)
        name, n = spec.name or endpoint.name, 1
        while not spec.name and name in taken:
            n += 1
            name = f"{endpoint.name}#{n}"
        taken.add(name)
        resolved.append((spec, endpoint, name))
    return resolved


def connect(
    spec: WorkerSpec,
    endpoint: Endpoint,
    name: str,
    default_slots: int | None = None,
    engines: Connect = real_engine,
) -> Worker:
    """Connect (through `engines`) and read the engine's facts. Blocking; raises
    InfraError if unreachable.

    Slots: the worker's own `slots`, else `default_slots` (`--jobs`), else its CPU count.
    """
    connection = engines(endpoint, spec.slots or 64, _CONNECT_TIMEOUT, _CALL_TIMEOUT)
    facts = connection.facts()
    return Worker(
        name=name,
        endpoint=endpoint,
        engine=connection,
        slots=spec.slots or default_slots or facts.cpus,
        cpus=facts.cpus,
        version=facts.version,
        volumes=spec.volumes,
        target=spec.context or spec.host or "default",
        containerd_store=facts.containerd_store,
        required=spec.required,
        compress=spec.compress,
        engines=engines,
    )
