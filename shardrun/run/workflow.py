"""The run, stage by stage: resolve workers → build → save → distribute + run → record.

Each stage is a verb that takes the previous stage's result. Stages emit events for the
front end and never print.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
from anyio import to_thread

from shardrun.cleanup.watchdog import Watchdog
from shardrun.config.spec import Config
from shardrun.distribute.artifact import image_file, tarball
from shardrun.distribute.artifact.tarball import Artifact
from shardrun.distribute.worker_facts import WorkerFacts
from shardrun.engine.api import ENGINE_FAILURES
from shardrun.image import build
from shardrun.model.errors import ConfigError
from shardrun.model.events import (
    ArtifactReady,
    Emit,
    RunPlanned,
    ShardFinished,
    ShardRequeued,
    Warned,
)
from shardrun.model.owner import LABEL_PROJECT
from shardrun.plan.partition import check_image, expected_on_slots
from shardrun.report.summary import RunSummary
from shardrun.run import cache_sources, reuse, schedule, stages
from shardrun.run.connect import (
    builder_endpoint,
    connect_builder,
    connect_workers,
    resolve_workers,
)
from shardrun.run.drive import cancelled_by
from shardrun.run.fanout import on_each
from shardrun.run.record import Ending, Phases, make_run_dir, record, summarize
from shardrun.run.request import RunRequest
from shardrun.run.shard import execute
from shardrun.run.workers import Worker
from shardrun.state import files, layout


@dataclass(frozen=True)
class Prepared:
    image_id: str
    builder: Worker | None  # None: the image came as a file (`run --image`)
    workers: list[Worker]
    unreachable: tuple[tuple[str, str, bool], ...]  # (worker, why, required)


async def build_image(
    config: Config, builder: Worker, emit: Emit, inline_cache: bool = False
) -> str:
    """`inline_cache`: the image travels as a file, and may be a cache source elsewhere."""
    cache_from = await to_thread.run_sync(
        cache_sources.for_builder, config, builder, emit, abandon_on_cancel=True
    )
    # Abandoned on Ctrl-C: closing the stream is what cancels a BuildKit build.
    image_id = await to_thread.run_sync(
        build.build,
        builder.engine,
        config.image,
        emit,
        {LABEL_PROJECT: config.project},
        cache_from,
        inline_cache,
        abandon_on_cancel=True,
    )
    tarball.record_latest(layout.state_dir(config.root), image_id)
    return image_id


def _announce(emit: Emit) -> Callable[[Artifact], None]:
    return lambda saved: emit(
        ArtifactReady(
            path=_rel(saved.path), size=saved.size, reused=saved.reused, seconds=saved.seconds
        )
    )


async def save_artifact(
    config: Config, builder: Worker, image_id: str, emit: Emit, output: Path | None = None
) -> tuple[Artifact, image_file.ImageFile | None]:
    """Save (or reuse) the tarball now: `shardrun build` does, for later runs and loads;
    with `output`, also the image file for other machines."""
    cache = layout.cache(layout.state_dir(config.root))
    if output is None:
        saved = await to_thread.run_sync(
            tarball.ensure, builder.engine, image_id, cache, abandon_on_cancel=True
        )
        written = None
    else:
        saved, written = await to_thread.run_sync(
            image_file.save_and_write,
            builder.engine,
            image_id,
            cache,
            output,
            abandon_on_cancel=True,
        )
    _announce(emit)(saved)
    return saved, written


async def prepare(request: RunRequest, emit: Emit, interrupt: anyio.Event) -> Prepared | None:
    """Build once while connecting to the workers (or, given an image file, read it
    into the cache instead); None if interrupted."""
    resolved = resolve_workers(request.worker_specs, request.shards)
    files.make_state_dirs(request.state_dir)  # only once the config is known to be good
    if request.image_file is not None:
        return await _prepare_from_file(request, request.image_file, resolved, emit, interrupt)
    async with cancelled_by(interrupt):
        if request.image_ref is not None:
            return await _prepare_from_engine(request, request.image_ref, resolved, emit)
        found: list = []

        async def connect_all() -> None:
            found.extend(
                await connect_workers(
                    resolved, emit, request.jobs, reaped=builder_url, engines=request.connect
                )
            )

        builder_url = builder_endpoint(request.config)[1].url
        async with anyio.create_task_group() as tg:
            tg.start_soon(connect_all)
            builder = await connect_builder(request.config, request.connect)
            image_id = await build_image(request.config, builder, emit)
        workers, unreachable = found
        return Prepared(image_id, builder, workers, unreachable)
    return None


async def _prepare_from_file(
    request: RunRequest, path: Path, resolved: list, emit: Emit, interrupt: anyio.Event
) -> Prepared | None:
    """No build: the image file's archive, verified into the cache first (a damaged file
    stops here, before any worker is touched), then the workers."""
    started = time.monotonic()
    image_id, tarball_path, reused = await to_thread.run_sync(
        image_file.import_into_cache,
        path,
        layout.cache(request.state_dir),
        abandon_on_cancel=True,
    )
    if request.expected_image:
        check_image(request.expected_image, image_id, str(path))
    emit(
        ArtifactReady(
            path=_rel(tarball_path),
            size=tarball_path.stat().st_size,
            reused=reused,
            seconds=time.monotonic() - started,
        )
    )
    tarball.record_latest(request.state_dir, image_id)
    async with cancelled_by(interrupt):
        workers, unreachable = await connect_workers(
            resolved, emit, request.jobs, engines=request.connect
        )
        return Prepared(image_id, None, workers, unreachable)
    return None


async def _prepare_from_engine(
    request: RunRequest, ref: str, resolved: list, emit: Emit
) -> Prepared:
    """No build: an image the build engine already holds, by ID or tag, treated as if it
    had just been built there (the workers that lack it get it from that engine)."""
    builder = await connect_builder(request.config, request.connect)
    image_id = await to_thread.run_sync(builder.engine.image_id_of, ref)
    if image_id is None:
        builder.engine.close()
        raise ConfigError(
            f'--image "{ref}": no such file, nor an image of that ID or tag on '
            f"{builder.name}; give the file `shardrun build --output` wrote, or an image there"
        )
    if request.expected_image:
        try:
            check_image(request.expected_image, image_id, f"--image {ref}")
        except ConfigError:
            builder.engine.close()
            raise
    tarball.record_latest(request.state_dir, image_id)
    workers, unreachable = await connect_workers(
        resolved, emit, request.jobs, reaped=builder.endpoint.url, engines=request.connect
    )
    return Prepared(image_id, builder, workers, unreachable)


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    return str(path)


async def run(request: RunRequest, emit: Emit, interrupt: anyio.Event) -> RunSummary:
    """The whole run. An interrupt at any stage still returns a summary, recorded with
    the run marked interrupted, once everything the run started is gone."""
    started = time.time()
    phases = Phases(emit)
    prepared = await prepare(request, phases, interrupt)
    if prepared is None:  # interrupted while building or connecting: nothing ran
        ending = Ending(started, "the run was interrupted before it started", interrupted=True)
        summary = summarize(request, schedule.ShardQueue(request.shards), ending, phases)
        record(request, summary)
        return summary
    if request.replan is not None:
        slots = sum(w.slots for w in prepared.workers)
        request = replace(request, shards=tuple(request.replan(min(slots, request.jobs or slots))))
    return await run_shards(request, prepared, phases, interrupt, started)


async def run_shards(
    request: RunRequest,
    prepared: Prepared,
    emit: Emit,
    interrupt: anyio.Event,
    started: float | None = None,
) -> RunSummary:
    """Get the image onto each worker and run every shard on the workers' slots.

    A worker starts taking shards as soon as it holds the image; a load that no shard
    needs any more (every shard finished elsewhere) is abandoned. Interrupted runs still
    return a summary (with CANCELLED shards) after every container is removed. A full
    disk on this machine stops the run (DiskFull, raised after the cleanup). `emit` may
    be the run's `Phases`: its build and save times then go into the report.
    """
    workers, image_id = prepared.workers, prepared.image_id
    started = started or time.time()
    run_dir = make_run_dir(request)
    slots = sum(w.slots for w in workers)
    emit(
        RunPlanned(
            run_id=request.run_id,
            shards=tuple(s.name for s in request.shards),
            run_dir=_rel(run_dir),
            expected=expected_on_slots(request.shards, request.config.timings_path),
            slots=min(slots, request.jobs or slots),
        )
    )
    for worker in workers:
        worker.start_run()
    queue = schedule.ShardQueue(
        request.shards, retries=request.retries, fail_fast=request.fail_fast
    )
    found = await to_thread.run_sync(_reused, request, prepared, run_dir, emit)
    for result in found.reused:
        queue.settle(result)
        emit(ShardFinished(result=result))
    lost = stages.LostWorkers(emit)
    stop = anyio.CancelScope()
    links = stages.Links(workers, WorkerFacts(layout.workers_file(request.state_dir)), emit)
    distribution = stages.Distribution(
        tarball.OnDemand(
            prepared.builder.engine if prepared.builder else None,
            image_id,
            layout.cache(request.state_dir),
            # An image file was announced as it was read in.
            _announce(emit) if prepared.builder else (lambda saved: None),
        ),
        links,
        request.config.project,
        lost,
        stop,
    )
    watchdog = Watchdog(request.run_id, [w.target for w in workers])
    try:
        async with cancelled_by(interrupt), anyio.create_task_group() as cleanup:
            runner = stages.ShardRunner(
                request.run_id,
                request.config.project,
                run_dir,
                request.secrets,
                emit,
                cleanup,
                request.keep_failed,
            )
            with stop:
                async with anyio.create_task_group() as background:
                    # Every shard reused: no worker needs the image, no container starts.
                    for worker in workers if queue.has_pending else ():
                        background.start_soon(distribution.deliver, worker)
                        background.start_soon(worker.watch, lost.mark)
                    await schedule.run_queue(
                        queue,
                        workers,
                        runner,
                        on_lost=lambda w, why: lost.announce(w, f"lost while running: {why}"),
                        on_requeue=lambda s, why: emit(ShardRequeued(name=s.name, reason=why)),
                        limit=request.jobs,
                    )
                    # Heartbeats, and loads that no shard waits for any more.
                    background.cancel_scope.cancel()
    finally:
        # Shielded: on Ctrl-C and on any failure, every container of the run is removed.
        with anyio.CancelScope(shield=True):
            await _reap(workers, request.run_id)
            links.close()  # the compressed streams' files
            watchdog.release()
            stopped = distribution.stopped
            ending = Ending(
                started,
                f"the run stopped: {stopped}" if stopped else "the run was interrupted",
                interrupted=interrupt.is_set() or (not queue.finished and not stopped),
                image_id=image_id,
                workers=tuple(workers),
                unreachable=prepared.unreachable,
                error=str(stopped) if stopped else "",
                compression=links.compression(),
                reuse_keys=found.keys,
            )
            summary = summarize(request, queue, ending, emit if isinstance(emit, Phases) else None)
            record(request, summary, found.passed)
    if distribution.stopped:
        raise distribution.stopped
    return summary


def _reused(request: RunRequest, prepared: Prepared, run_dir: Path, emit: Emit) -> reuse.Found:
    """The shards that passed before on this image's content (none with --no-reuse)."""
    if not request.reuse or not any(s.reuse for s in request.shards):
        return reuse.Found()
    engine = prepared.builder.engine if prepared.builder else None
    try:
        content = reuse.image_content(engine, prepared.image_id, request.state_dir)
    except ValueError as exc:
        emit(Warned(message=f"no shard is reused this run: {exc}"))
        return reuse.Found()
    found = reuse.look_up(
        request.shards,
        content,
        request.secrets,
        layout.results_record(request.state_dir),
        run_dir,
        worker_volumes=any(spec.volumes for spec in request.worker_specs),
    )
    for warning in found.warnings:
        emit(Warned(message=warning))
    return found


async def _reap(workers: list[Worker], run_id: str) -> None:
    async def one(worker: Worker) -> None:
        with anyio.move_on_after(30):
            # An unreachable worker's containers die with it: nothing to reach.
            with contextlib.suppress(*ENGINE_FAILURES):
                await execute.reap(worker.engine, run_id, worker.limiter)

    await on_each(workers, one)
