"""Get the image onto every worker, sending only what each one lacks.

A worker that holds the image ID gets nothing; one that holds a bottom prefix of its
layers gets a thin tarball without those layer files; any other gets the full tarball.
A worker that refuses a thin tarball (the containerd image store does) gets the full one,
and is remembered so later runs go straight to full loads. A thin tarball that is not
whole (cut off by a full disk or a killed writer) is rewritten, never held against the
worker. A full disk on this side is DiskFull, raised as it is: the run stops, and no
worker is to blame.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shardrun import layers
from shardrun.artifact import Artifact, OnDemand, tarball_path
from shardrun.cache_files import exclusive, no_room, temp_file
from shardrun.engine.api import Engine
from shardrun.errors import EngineRefused, InfraError
from shardrun.events import Emit, WorkerTransfer
from shardrun.timings import write_atomic

_CHUNK = 1 << 20
_PROGRESS_EVERY = 0.2  # seconds between transfer events per worker


@dataclass(frozen=True)
class Delivery:
    worker: str
    mode: str  # "none" (already there), "thin" or "full"
    sent: int  # bytes sent
    full_size: int  # bytes of the full tarball, for comparison
    seconds: float


class ThinRefusals:
    """Workers (by URL) that refused a thin tarball, kept in .shardrun/workers.json."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._refused = set(json.loads(path.read_text()).get("thin_refused", []))
        except (OSError, ValueError, AttributeError):
            self._refused = set()

    def allows(self, url: str) -> bool:
        return url not in self._refused

    def refuse(self, url: str) -> None:
        self._refused.add(url)
        write_atomic(self.path, json.dumps({"thin_refused": sorted(self._refused)}, indent=2))


def _layers_held(engine: Engine, diff_ids: list[str], project: str) -> int:
    """How many bottom layers the worker holds. An earlier build of the project usually
    shares all but the top ones, and looking at those alone is quick on a busy engine
    (listing all images inspects every one, ~3 ms an image)."""
    skip = layers.held_prefix(diff_ids, layers.held_chain_ids(engine.image_layers(project)))
    if skip == 0:
        skip = layers.held_prefix(diff_ids, layers.held_chain_ids(engine.image_layers(None)))
    return skip


def thin_tarball(artifact: Artifact, omit: set[str], skip: int) -> Path:
    """The cached thin tarball of `artifact` without its `skip` bottom layer files, written
    unless a whole one is there. Raises DiskFull if the disk fills up while writing it."""
    path = _thin_path(artifact.path, skip)
    # Workers are served by threads, and other runs of the project share the cache: one
    # writes the tarball, the others wait for it and reuse it.
    with exclusive(path):
        if layers.is_complete(path, artifact.image_id, omit):
            return path
        needed = layers.thin_size(artifact.path, omit)
        with temp_file(path, "a thin tarball", needed) as tmp:
            layers.write_thin_to(artifact.path, omit, tmp.file)
            tmp.publish()
    return path


def _thin_path(full: Path, skip: int) -> Path:
    return full.with_name(f"{full.stem}.thin{skip}.tar")


def _keep_if_whole(thin: Path, sent: os.stat_result, image_id: str, omit: set[str]) -> bool:
    """After a thin load failed: True if the tarball it read is whole (so the engine is
    what refused it). One that is not is removed, to be written again next time."""
    with exclusive(thin):
        try:
            now = thin.stat()
        except FileNotFoundError:
            return False
        if (now.st_dev, now.st_ino) != (sent.st_dev, sent.st_ino):
            return False  # rewritten since: what was sent cannot be checked any more
        if layers.is_complete(thin, image_id, omit):
            return True
        thin.unlink()
        return False


def _chunks(path: Path, progress: Callable[[int], None]) -> Iterator[bytes]:
    """The file in chunks, reporting bytes sent: streamed, never whole in memory."""
    sent = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk
            sent += len(chunk)
            progress(sent)


def deliver(
    engine: Engine,
    worker: str,
    url: str,
    image: OnDemand,
    refusals: ThinRefusals,
    emit: Emit,
    project: str,
) -> Delivery:
    """Make sure `worker` holds the image. Blocking; raises InfraError if it cannot.

    Which layers the worker lacks is known from the build engine's diff IDs, before any
    tarball exists. A thin tarball is cut straight from the save stream while no full one
    is needed, so a top-layer change costs one pass over the save and no full tarball on
    disk; the full tarball is saved (once, for every worker) only when one needs it.
    """
    started = time.monotonic()
    image_id = image.image_id

    def done(mode: str, sent: int, full: int = 0) -> Delivery:
        emit(WorkerTransfer(worker=worker, sent=sent, total=sent, mode=mode))
        return Delivery(worker, mode, sent, full, time.monotonic() - started)

    if engine.has_image(image_id):
        return done("none", 0)
    if refusals.allows(url):
        skip = _layers_held(engine, image.diff_ids(), project)
        if skip:
            thin, omit = _thin_for(image, skip)
            sent = _send_thin(engine, worker, url, image_id, thin, omit, refusals, emit)
            if sent is not None:
                return done("thin", sent, image.full_size())
    artifact = image.get()
    try:
        _send(engine, worker, artifact.path, "full", emit)
    except EngineRefused as exc:
        raise InfraError(f"loading the image into worker {worker} failed: {exc}") from exc
    if not engine.has_image(image_id):
        raise InfraError(f"worker {worker} loaded the tarball but lacks image {image_id[:19]}")
    return done("full", artifact.size, artifact.size)


def _thin_for(image: OnDemand, skip: int) -> tuple[Path, set[str]]:
    """The thin tarball without the `skip` bottom layer files, and the names it leaves
    out: from the save stream, or cut from the full tarball when that is saved anyway (or
    the stream cannot be cut on the fly)."""
    if not image.has_full() and (streamed := thin_from_save(image, skip)) is not None:
        return streamed
    artifact = image.get()
    saved = layers.read_saved(artifact.path)
    omit = layers.omitted_files(saved, skip)
    return thin_tarball(artifact, omit, skip), omit


def thin_from_save(image: OnDemand, skip: int) -> tuple[Path, set[str]] | None:
    """The thin tarball cut from the build engine's save stream (one pass, no full
    tarball kept), or None where that cannot be done: a held layer equal to one above the
    held prefix (its content would be cut from both), or a kept member linking to a cut
    one. Raises DiskFull if the disk fills up while writing it."""
    diff_ids = image.diff_ids()
    cut = set(diff_ids[:skip])
    if cut & set(diff_ids[skip:]):
        return None
    path = _thin_path(tarball_path(image.cache_dir, image.image_id), skip)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path):
        omit = _whole_thin(path, image.image_id, skip)
        if omit is not None:
            return path, omit
        # The disk must hold the largest left-out layer for a moment: it is cut back out
        # of the file once read, which is how it is known to be one of the held ones.
        # Layer sizes are not known before, so ask for room for the image, as a full save
        # does: a run fails at once then, not after a load nobody waited for.
        needed = image.full_size()
        if shutil.disk_usage(path.parent).free < needed:
            raise no_room(path.parent, "a thin tarball cut from the image", needed)
        with temp_file(path, "a thin tarball", needed) as tmp:
            try:
                omit = layers.write_thin_from_stream(
                    image.engine.save(image.image_id, _CHUNK), cut, tmp.file
                )
            except layers.NotStreamable:
                return None
            tmp.file.flush()
            if not layers.is_complete(tmp.path, image.image_id, omit):
                raise InfraError(f"the save stream of {image.image_id[:19]} ended early; "
                                 "run again")
            tmp.publish()
    return path, omit


def _whole_thin(path: Path, image_id: str, skip: int) -> set[str] | None:
    """The names a cached thin tarball leaves out, if it is whole; else None."""
    try:
        with tarfile.open(path) as tar:
            [entry] = json.load(tar.extractfile("manifest.json"))
    except (OSError, tarfile.TarError, KeyError, ValueError, TypeError, AttributeError):
        return None
    omit = set(entry.get("Layers", [])[:skip])
    return omit if layers.is_complete(path, image_id, omit) else None


def _send_thin(
    engine: Engine,
    worker: str,
    url: str,
    image_id: str,
    thin: Path,
    omit: set[str],
    refusals: ThinRefusals,
    emit: Emit,
) -> int | None:
    """Load the thin tarball; the bytes sent if the worker now holds the image, else None
    and the caller loads the full one.

    Only the engine's error over a whole tarball marks the worker as refusing thin loads:
    a cut-off tarball fails on any engine, and remembering that would cost the worker
    thin loads for good.
    """
    sent = thin.stat()
    try:
        _send(engine, worker, thin, "thin", emit)
    except EngineRefused:
        if _keep_if_whole(thin, sent, image_id, omit):
            refusals.refuse(url)  # e.g. the containerd image store wants every blob
        return None
    if engine.has_image(image_id):
        return sent.st_size
    _keep_if_whole(thin, sent, image_id, omit)  # loaded without error, yet no image
    return None


def _send(engine: Engine, worker: str, path: Path, mode: str, emit: Emit) -> None:
    total = path.stat().st_size
    last = 0.0

    def progress(sent: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_EVERY and sent < total:
            last = now
            emit(WorkerTransfer(worker=worker, sent=sent, total=total, mode=mode))

    engine.load(_chunks(path, progress))
