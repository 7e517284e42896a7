"""Which engines a command uses and connecting to them: the workers, the builder, and the
orphan reap every engine gets first. Resolving contacts no engine; connecting does."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from anyio import to_thread

from shardrun.cleanup import reap
from shardrun.config.spec import Config, WorkerSpec
from shardrun.config.workers import DEFAULT
from shardrun.engine.api import ENGINE_FAILURES
from shardrun.engine.endpoints import Endpoint, resolve
from shardrun.image import build
from shardrun.model.errors import InfraError
from shardrun.model.events import Emit, WorkerLost, WorkerReady
from shardrun.model.shard import Shard
from shardrun.plan.expand import check_remote_binds
from shardrun.run import workers as workers_mod
from shardrun.run.fanout import in_threads
from shardrun.run.request import Connect, real_engine
from shardrun.run.workers import Worker

Resolved = tuple[WorkerSpec, Endpoint, str]  # a worker's spec, its endpoint, its name


def resolve_workers(specs: Sequence[WorkerSpec], shards: Sequence[Shard] = ()) -> list[Resolved]:
    """Resolve every worker and check the shards can run on each; no engine is contacted."""
    resolved = workers_mod.resolve(tuple(specs))
    check_remote_binds(shards, [(name, ep.is_remote, spec.volumes) for spec, ep, name in resolved])
    return resolved


def connect_and_reap(
    spec: WorkerSpec,
    endpoint: Endpoint,
    name: str,
    default_slots: int | None = None,
    reap_orphans: bool = True,
    engines: Connect = real_engine,
) -> Worker:
    """Connect; like every engine a command uses, it is first rid of orphaned containers
    (once per engine: the build engine is usually a worker too)."""
    worker = workers_mod.connect(spec, endpoint, name, default_slots, engines)
    if reap_orphans:
        with contextlib.suppress(*ENGINE_FAILURES):
            reap.remove_orphans(worker.engine)
    return worker


def builder_endpoint(config: Config) -> Resolved:
    """The engine that builds: `[image] builder` (or `--builder`), a [[worker]] name, a
    docker context or an engine URL; by default the current docker context, as `docker
    build` would use. No engine is contacted."""
    name = config.image.builder
    if not name:
        return DEFAULT, resolve(None), "local"
    for spec in config.workers:
        if spec.name == name:
            return spec, resolve(spec.context or spec.host), name
    spec = WorkerSpec(
        name=None,
        context=None if "://" in name else name,
        host=name if "://" in name else None,
        slots=None,
    )
    endpoint = resolve(name)
    return spec, endpoint, endpoint.name


async def connect_builder(config: Config, engines: Connect = real_engine) -> Worker:
    """Connect to the builder and check it can build from a context sent over the API."""
    spec, endpoint, name = builder_endpoint(config)
    builder = await to_thread.run_sync(
        connect_and_reap, spec, endpoint, name, None, True, engines, abandon_on_cancel=True
    )
    build.check_builder(builder.name, builder.version, builder.containerd_store)
    return builder


async def connect_workers(
    resolved: list[Resolved],
    emit: Emit,
    jobs: int | None = None,
    reaped: str = "",
    engines: Connect = real_engine,
) -> tuple[list[Worker], tuple[tuple[str, str, bool], ...]]:
    """Connect to every worker at once, removing orphans there unless it is the engine at
    `reaped` (the builder's); an unreachable one is reported and skipped."""

    def one(item: Resolved) -> Worker | InfraError:
        spec, endpoint, name = item
        try:
            worker = connect_and_reap(spec, endpoint, name, jobs, endpoint.url != reaped, engines)
        except InfraError as exc:
            emit(WorkerLost(worker=name, reason=f"unreachable, skipped: {exc}"))
            return exc
        emit(
            WorkerReady(
                worker=name,
                slots=worker.slots,
                detail=f"(docker {worker.version}, {worker.cpus} CPUs, {endpoint.url})",
            )
        )
        return worker

    outcomes = await in_threads(resolved, one)
    connected = [w for w in outcomes if isinstance(w, Worker)]
    failed = tuple(
        (name, str(out), spec.required)
        for (spec, _, name), out in zip(resolved, outcomes, strict=True)
        if isinstance(out, InfraError)
    )
    if not connected:
        reasons = "; ".join(why for _, why, _ in failed)
        raise InfraError(f"no worker is reachable: {reasons}")
    return connected, failed
