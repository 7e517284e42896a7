"""Get the image onto every worker, sending only what each one lacks.

A worker that holds the image (by its ID, or on the containerd image store by its content
tag) gets nothing; one that holds a bottom prefix of its layers gets a thin tarball
without those layers (a docker archive on a graph-driver store, an OCI layout on the
containerd store); any other gets the full tarball. A worker that refuses a thin docker
archive gets the full one, and is remembered so later runs go straight to full loads. A thin tarball that is not
whole (cut off by a full disk or a killed writer) is rewritten, never held against the
worker. A full disk on this side is DiskFull, raised as it is: the run stops, and no
worker is to blame.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardrun.distribute import blob_names, layers, oci_layout
from shardrun.distribute.tarball import Artifact, OnDemand, save_stream
from shardrun.engine.api import ENGINE_FAILURES, Engine
from shardrun.model.errors import EngineRefused, InfraError
from shardrun.model.image_ref import content_tag, held_chain_ids
from shardrun.state import layout
from shardrun.state.files import exclusive, no_room, temp_file, write_atomic
from shardrun.ui.events import Emit, WorkerTransfer

_CHUNK = 1 << 20
_PROGRESS_EVERY = 0.2  # seconds between transfer events per worker


@dataclass(frozen=True)
class Delivery:
    worker: str
    mode: str  # "none" (already there), "thin" or "full"
    sent: int  # bytes sent
    full_size: int  # bytes of the full tarball, for comparison
    seconds: float
    ref: str = ""  # what the worker knows the image by: its ID, or its content tag
    started: float = 0.0  # wall clock, when its delivery began


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
    skip = layers.held_prefix(diff_ids, held_chain_ids(engine.image_layers(project)))
    if skip == 0:
        skip = layers.held_prefix(diff_ids, held_chain_ids(engine.image_layers(None)))
    return skip


def thin_tarball(artifact: Artifact, omit: set[str], skip: int) -> Path:
    """The cached thin tarball of `artifact` without its `skip` bottom layer files, written
    unless a whole one is there. Raises DiskFull if the disk fills up while writing it."""
    path = layout.thin_tarball(artifact.path, skip)
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


def _keep_if_whole(thin: Thin, sent: os.stat_result, image_id: str) -> bool:
    """After a thin load failed: True if the tarball it read is whole (so the engine is
    what refused it). One that is not is removed, to be written again next time."""
    with exclusive(thin.path):
        try:
            now = thin.path.stat()
        except FileNotFoundError:
            return False
        if (now.st_dev, now.st_ino) != (sent.st_dev, sent.st_ino):
            return False  # rewritten since: what was sent cannot be checked any more
        if thin.is_complete(image_id):
            return True
        thin.path.unlink()
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
    containerd_store: bool = False,
) -> Delivery:
    """Make sure `worker` holds the image. Blocking; raises InfraError if it cannot.

    Which layers the worker lacks is known from the build engine's diff IDs, before any
    tarball exists. A thin tarball (a docker archive; an OCI layout for the containerd
    image store) is cut straight from the save stream while no full one is needed, so a
    top-layer change costs one pass over the save and no full tarball on disk; the full
    tarball is saved (once, for every worker) only when one needs it.
    """
    started, wall = time.monotonic(), time.time()
    image_id = image.image_id
    diff_ids = image.diff_ids()

    def done(mode: str, sent: int, ref: str, full: int = 0) -> Delivery:
        emit(WorkerTransfer(worker=worker, sent=sent, total=sent, mode=mode))
        return Delivery(worker, mode, sent, full, time.monotonic() - started, ref, wall)

    if ref := engine.find_image(image_id, diff_ids):
        return done("none", 0, ref)
    # The containerd store refuses thin docker archives but takes thin OCI layouts.
    if containerd_store or refusals.allows(url):
        skip = _layers_held(engine, diff_ids, project)
        thin = _thin_for(image, skip, containerd_store) if skip else None
        if thin is not None:
            loaded = _send_thin(engine, worker, url, image, thin, refusals, emit)
            if loaded is not None:
                return done("thin", loaded[0], loaded[1], image.full_size())
    artifact = image.get()
    try:
        _send(engine, worker, artifact.path, "full", emit)
    except EngineRefused as exc:
        raise InfraError(f"loading the image into worker {worker} failed: {exc}") from exc
    ref = engine.find_image(image_id, diff_ids)
    if ref is None:
        raise InfraError(f"worker {worker} loaded the tarball but lacks image {image_id[:19]}")
    return done("full", artifact.size, ref, artifact.size)


@dataclass(frozen=True)
class Thin:
    """A thin tarball and what it leaves out: layer file names of a docker archive, or
    layer digests of an OCI layout."""

    path: Path
    omit: set[str]
    oci: bool = False

    def is_complete(self, image_id: str) -> bool:
        if self.oci:
            return oci_layout.is_complete(self.path, image_id, self.omit)
        return layers.is_complete(self.path, image_id, self.omit)


def _thin_for(image: OnDemand, skip: int, oci: bool) -> Thin | None:
    """The thin tarball without the `skip` bottom layers: from the save stream, or cut
    from the full tarball when that is saved anyway (or the stream cannot be cut on the
    fly). None if no OCI layout can be made of the image."""
    if oci:
        return oci_from_save(image, skip)
    if not image.has_full() and (streamed := thin_from_save(image, skip)) is not None:
        return Thin(*streamed)
    artifact = image.get()
    saved = layers.read_saved(artifact.path)
    omit = layers.omitted_files(saved, skip)
    return Thin(thin_tarball(artifact, omit, skip), omit)


def thin_from_save(image: OnDemand, skip: int) -> tuple[Path, set[str]] | None:
    """The thin tarball cut from the build engine's save stream (one pass, no full
    tarball kept), or None where that cannot be done: a held layer equal to one above the
    held prefix (its content would be cut from both), or a kept member linking to a cut
    one. Raises DiskFull if the disk fills up while writing it."""
    engine = image.engine
    diff_ids = image.diff_ids()
    cut = set(diff_ids[:skip])
    if engine is None or cut & set(diff_ids[skip:]):
        return None  # (no engine: the image came as a file, its full tarball is cached)
    cut |= blob_names.known(image.cache_dir, diff_ids[:skip])
    path = layout.thin_tarball(layout.tarball(image.cache_dir, image.image_id), skip)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path):
        omit = _whole_thin(path, image.image_id, skip)
        if omit is not None:
            return path, omit
        omit = _write_cut(
            image,
            path,
            "a thin tarball",
            lambda out: layers.write_thin_from_stream(
                save_stream(engine, image.image_id, _CHUNK), cut, out
            ),
            layers.is_complete,
        )
        if omit is not None:
            blob_names.learn(image.cache_dir, layers.compressed_blobs(path))
    return (path, omit) if omit is not None else None


def oci_from_save(image: OnDemand, skip: int) -> Thin | None:
    """The OCI layout without the `skip` bottom layers, for a containerd-store worker: from
    the full tarball if it is saved, else from the save stream. None if the image's layers
    are not named by their diff IDs. Raises DiskFull if the disk fills up."""
    held = image.diff_ids()[:skip]
    omit = set(held) | blob_names.known(image.cache_dir, held)
    path = layout.oci_layout(image.cache_dir, image.image_id, skip)
    thin = Thin(path, omit, oci=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path):
        if thin.is_complete(image.image_id):
            return thin
        if image.has_full() or image.engine is None:
            source = _chunks(image.get().path, lambda sent: None)
        else:
            source = save_stream(image.engine, image.image_id, _CHUNK)

        def write(out: BinaryIO) -> set[str]:
            oci_layout.write_from_save(source, omit, content_tag(image.image_id), out)
            return omit

        if _write_cut(image, path, "an OCI layout", write, oci_layout.is_complete) is None:
            return None
        blob_names.learn(image.cache_dir, oci_layout.compressed_blobs(path))
    return thin


def _write_cut(
    image: OnDemand,
    path: Path,
    what: str,
    write: Callable[[BinaryIO], set[str]],
    is_complete: Callable[[Path, str, set[str]], bool],
) -> set[str] | None:
    """Write `path` through a temp file: `write(out)` gives what it left out, or raises
    NotStreamable (None is returned). InfraError if the result is not whole (the stream
    ended early); DiskFull if the disk fills up."""
    with temp_file(path, what, _room_for_cut(image, path)) as tmp:
        try:
            omit = write(tmp.file)
        except layers.NotStreamable:
            return None
        tmp.file.flush()
        if not is_complete(tmp.path, image.image_id, omit):
            raise InfraError(f"the save stream of {image.image_id[:19]} ended early; run again")
        tmp.publish()
    return omit


def _room_for_cut(image: OnDemand, path: Path) -> int:
    # The disk must hold the largest left-out layer for a moment: it is cut back out of
    # the file once read, which is how it is known to be one of the held ones. Layer
    # sizes are not known before, so ask for room for the image, as a full save does: a
    # run fails at once then, not after a load nobody waited for.
    needed = image.full_size()
    if shutil.disk_usage(path.parent).free < needed:
        raise no_room(path.parent, "a thin tarball cut from the image", needed)
    return needed


def _whole_thin(path: Path, image_id: str, skip: int) -> set[str] | None:
    """The names a cached thin tarball leaves out, if it is whole; else None."""
    try:
        with tarfile.open(path) as tar:
            entry = layers.read_manifest(tar).entry
    except layers.UNREADABLE:
        return None
    omit = set(entry.get("Layers", [])[:skip])
    return omit if layers.is_complete(path, image_id, omit) else None


def _send_thin(
    engine: Engine,
    worker: str,
    url: str,
    image: OnDemand,
    thin: Thin,
    refusals: ThinRefusals,
    emit: Emit,
) -> tuple[int, str] | None:
    """Load the thin tarball; the bytes sent and what the worker now knows the image by,
    or None and the caller loads the full one.

    Only the engine's error over a whole docker archive marks the worker as refusing thin
    loads: a cut-off tarball fails on any engine, and remembering that would cost the
    worker thin loads for good. A refused OCI layout is not remembered: the store takes
    one when it holds the blobs left out, which the next image may find there.
    """
    sent = thin.path.stat()
    try:
        _send(engine, worker, thin.path, "thin", emit)
    except EngineRefused:
        if thin.oci:
            # The store may keep the image it failed to unpack, under our tag: containers
            # created from that fail, so the tag must go before the full load.
            with contextlib.suppress(*ENGINE_FAILURES):
                engine.untag(content_tag(image.image_id))
        if _keep_if_whole(thin, sent, image.image_id) and not thin.oci:
            refusals.refuse(url)
        return None
    if ref := engine.find_image(image.image_id, image.diff_ids()):
        return sent.st_size, ref
    _keep_if_whole(thin, sent, image.image_id)  # loaded without error, yet no image
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
