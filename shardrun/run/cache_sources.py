"""`--cache-from`: each source made into something the builder reads build steps from.

A fresh engine (a hosted CI runner, an ephemeral self-hosted one, a pruned laptop) has no
build cache, so every step of the Dockerfile would run again. An image shardrun built
carries BuildKit's inline cache metadata (image.build.INLINE_CACHE); handed to BuildKit as
`cachefrom`, every step whose inputs are unchanged is taken from that image's layers
instead of being run. An image file is loaded into the builder first (thin, where it holds
the lower layers), since BuildKit reads the cache of an image the engine holds.

A source that cannot be used (a first run with no file yet, a damaged or foreign file,
another project's image) costs one warning and a cold build, never the run.

On the containerd image store, dockerd's BuildKit reads a cache only from a registry: moby
wires its local inline-cache importer for graph-driver engines alone
(daemon/internal/builder-next/controller.go), so there an image file or a local tag gives
nothing, and is not loaded for nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from shardrun.config.spec import Config
from shardrun.distribute.artifact import image_file
from shardrun.distribute.artifact.layers import UNREADABLE
from shardrun.distribute.artifact.tarball import OnDemand
from shardrun.distribute.compress.shared_stream import SharedStreams
from shardrun.distribute.deliver import deliver
from shardrun.distribute.send import Link
from shardrun.distribute.worker_facts import WorkerFacts
from shardrun.engine.api import ENGINE_FAILURES
from shardrun.image.build import CacheSource
from shardrun.model.errors import ConfigError, DiskFull, InfraError
from shardrun.model.events import Emit, Warned
from shardrun.model.image_ref import content_tag
from shardrun.model.owner import LABEL_PROJECT
from shardrun.model.transit import NONE
from shardrun.run.workers import Worker
from shardrun.state import layout


class Unusable(Exception):
    """Why one source is of no use to this build (the whole warning line)."""


def for_builder(config: Config, builder: Worker, emit: Emit) -> list[CacheSource]:
    """The sources the build can use, in the order given; a warning for each other one.
    Blocking."""
    usable = []
    for source in config.image.cache_from:
        try:
            if builder.containerd_store and not _names_registry(source):
                raise Unusable(
                    f"--cache-from {_shown(Path(source)) if os.path.isabs(source) else source}: "
                    f"{builder.name} keeps images in the containerd store, where BuildKit "
                    "reads a cache only from a registry; give a registry reference"
                )
            if os.path.isabs(source):  # the config made every image file's path absolute
                usable.append(_from_file(Path(source), config, builder))
            else:
                usable.append(_from_reference(source, builder))
        except Unusable as exc:
            emit(Warned(message=f"{exc}; building without it"))
    return usable


def _from_file(path: Path, config: Config, builder: Worker) -> CacheSource:
    shown = _shown(path)
    if not os.path.lexists(path):
        raise Unusable(f"--cache-from {shown}: no such file (a first run has none)")
    state = layout.state_dir(config.root)
    cache = layout.cache(state)
    try:
        image_id, tarball, _ = image_file.import_into_cache(path, cache, "--cache-from")
        labels = (image_file.config_of(tarball).get("config") or {}).get("Labels") or {}
    except (ConfigError, InfraError, DiskFull) as exc:
        raise Unusable(str(exc).split("; ")[0]) from None  # its fix is for --image
    except UNREADABLE as exc:
        raise Unusable(f"--cache-from {shown}: its image config cannot be read ({exc})") from None
    project = labels.get(LABEL_PROJECT) if isinstance(labels, dict) else None
    if project is not None and project != config.project:
        raise Unusable(
            f'--cache-from {shown}: an image of project "{project}", not "{config.project}"'
        )
    image = OnDemand(None, image_id, cache, lambda saved: None)
    link = Link(
        builder.name,
        builder.endpoint.url,
        NONE,  # the builder is usually this machine: compressing costs more than it saves
        SharedStreams(),
        WorkerFacts(layout.workers_file(state)),
        lambda event: None,  # not a worker's load: the build line says what it gave
    )
    try:
        delivered = deliver(builder.engine, link, image, config.project, builder.containerd_store)
    except (InfraError, DiskFull, *ENGINE_FAILURES) as exc:
        raise Unusable(
            f"--cache-from {shown}: loading it into {builder.name} failed: {exc}"
        ) from None
    if delivered.ref == image_id:
        # BuildKit resolves cachefrom as a reference: a bare image ID is none on 20.10.
        try:
            builder.engine.tag(image_id, content_tag(image_id))
        except ENGINE_FAILURES as exc:
            raise Unusable(
                f"--cache-from {shown}: tagging it on {builder.name} failed: {exc}"
            ) from None
        return CacheSource(content_tag(image_id), shown)
    return CacheSource(delivered.ref, shown)


def _from_reference(ref: str, builder: Worker) -> CacheSource:
    """An image the builder holds, or one in a registry (BuildKit fetches only its cache
    metadata, then the layers of the steps it reuses)."""
    try:
        held = builder.engine.image_id_of(ref)
    except ENGINE_FAILURES as exc:
        raise Unusable(f"--cache-from {ref}: {builder.name} did not answer ({exc})") from None
    if held is None and not _names_registry(ref):
        raise Unusable(
            f"--cache-from {ref}: no such file, nor an image of that ID or tag on {builder.name}"
        )
    return CacheSource(ref, ref)


def _names_registry(ref: str) -> bool:
    """ghcr.io/owner/name, localhost:5000/name, 10.0.0.1:5000/name: a reference whose
    first part is a host, as docker tells them from Docker Hub's user names."""
    first, slash, _ = ref.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)
