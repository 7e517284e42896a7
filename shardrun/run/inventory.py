"""Every worker at once, outside a run: `shardrun workers` surveys them (reachable, engine
version, CPUs, slots, whether each has the image), `clean` removes the kept containers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from shardrun.cleanup import reap
from shardrun.config.spec import Config, WorkerSpec
from shardrun.config.workers import chosen
from shardrun.distribute.artifact.tarball import latest_image_id
from shardrun.distribute.worker_facts import WorkerFacts
from shardrun.engine.api import ENGINE_FAILURES
from shardrun.engine.endpoints import Endpoint
from shardrun.model.errors import InfraError
from shardrun.report.history import used_images
from shardrun.run import workers
from shardrun.run.connect import Resolved, connect_and_reap, resolve_workers
from shardrun.run.fanout import in_threads
from shardrun.run.request import Connect, real_engine
from shardrun.state.clean import Cleaned as CleanedFiles
from shardrun.state.clean import clean_files
from shardrun.state.layout import state_dir, workers_file


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


@dataclass(frozen=True)
class Survey:
    rows: list[WorkerRow]
    image_id: str | None  # the latest image built or read here; None: none yet
    links: dict[str, str]  # a worker's URL -> what its last loads measured

    @property
    def any_reachable(self) -> bool:
        return any(row.reachable for row in self.rows)


def survey_workers(
    config: Config, given: Sequence[WorkerSpec] = (), engines: Connect = real_engine
) -> Survey:
    """`shardrun workers`: the chosen workers (`given`, else the config's), all at once."""
    state = state_dir(config.root)
    image_id = latest_image_id(state)
    resolved = resolve_workers(chosen(config, tuple(given)))  # may load the SSH transport
    rows = anyio.run(survey, resolved, image_id, engines)
    facts = WorkerFacts(workers_file(state))
    return Survey(rows, image_id, {row.url: facts.describe(row.url) for row in rows})


def _probe(
    spec: WorkerSpec, endpoint: Endpoint, name: str, image_id: str | None, engines: Connect
) -> WorkerRow:
    try:
        # Like every command, reap first.
        worker = connect_and_reap(spec, endpoint, name, engines=engines)
    except InfraError as exc:
        return WorkerRow(name, endpoint.url, reachable=False, error=str(exc))
    try:
        # By ID or by content tag: on the containerd image store the ID is another.
        has = worker.engine.find_image(image_id, None) is not None if image_id else None
    finally:
        worker.engine.close()
    return WorkerRow(name, endpoint.url, True, "", worker.version, worker.cpus, worker.slots, has)


async def survey(
    resolved: list[Resolved], image_id: str | None, engines: Connect = real_engine
) -> list[WorkerRow]:
    return await in_threads(resolved, lambda item: _probe(*item, image_id, engines))


@dataclass(frozen=True)
class CleanRequest:
    every: bool  # --containers: not only the kept ones
    force: bool  # --force: live runs' containers too
    kept_before: float  # kept containers made before this (epoch seconds) go
    project: str
    used_tags: frozenset[str]  # content tags the remaining runs name: they stay


@dataclass(frozen=True)
class CleanRow:
    worker: str
    swept: reap.Swept = field(default_factory=reap.Swept)
    tags: int = 0  # content tags removed
    freed: int = 0  # bytes of the images that went with them
    error: str = ""


async def clean_workers(
    resolved: list[Resolved], request: CleanRequest, engines: Connect = real_engine
) -> list[CleanRow]:
    """`shardrun clean` on every worker at once: containers, then unused content tags."""

    def one(item: Resolved) -> CleanRow:
        spec, endpoint, name = item
        try:
            worker = workers.connect(spec, endpoint, name, None, engines)
        except InfraError as exc:
            return CleanRow(name, error=str(exc))
        try:
            swept = reap.remove_for_clean(
                worker.engine, request.every, request.force, request.kept_before
            )
            tags, freed = reap.remove_unused_tags(
                worker.engine, request.project, set(request.used_tags)
            )
            return CleanRow(name, swept, tags, freed)
        except ENGINE_FAILURES as exc:
            return CleanRow(name, error=str(exc))
        finally:
            worker.engine.close()

    return await in_threads(resolved, one)


@dataclass(frozen=True)
class Cleaned:
    files: CleanedFiles  # the run folders and cache files removed
    rows: list[CleanRow]  # each worker's containers and tags


def clean(
    config: Config,
    older_than: float,
    every: bool,
    force: bool,
    given: Sequence[WorkerSpec] = (),
    engines: Connect = real_engine,
) -> Cleaned:
    """`shardrun clean`: old runs and cache files, then on every chosen worker at once the
    kept containers (with `every`, any whose runner is gone) and unused content tags."""
    state = state_dir(config.root)
    files = clean_files(state, older_than)
    request = CleanRequest(
        every=every,
        force=force,
        kept_before=time.time() - older_than,
        project=config.project,
        used_tags=frozenset(used_images(state)),
    )
    resolved = resolve_workers(chosen(config, tuple(given)))
    return Cleaned(files, anyio.run(clean_workers, resolved, request, engines))
