"""Get the image onto every worker, sending only what each one lacks.

A worker that holds the image (by its ID, or on the containerd image store by its content
tag) gets nothing; one that holds a bottom prefix of its layers gets a thin tarball
without those layers (a docker archive on a graph-driver store, an OCI layout on the
containerd store); any other gets the full tarball. A worker that refuses a thin docker
archive gets the full one, and is remembered so later runs go straight to full loads. Each archive goes raw or
compressed as `send` decides with the worker's codec. A thin tarball that is not
whole (cut off by a full disk or a killed writer) is rewritten, never held against the
worker. A full disk on this side is DiskFull, raised as it is: the run stops, and no
worker is to blame.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardrun.distribute import pieces
from shardrun.distribute.artifact import blob_names, layers, oci_layout
from shardrun.distribute.artifact.tarball import Artifact, OnDemand, save_stream
from shardrun.distribute.compress.codecs import NONE
from shardrun.distribute.send import Link, Sent, file_chunks, send
from shardrun.engine.api import ENGINE_FAILURES, Engine
from shardrun.model.errors import EngineRefused, InfraError
from shardrun.model.events import WorkerTransfer
from shardrun.model.image_ref import content_tag, held_chain_ids
from shardrun.state import layout
from shardrun.state.files import exclusive, no_room, temp_file

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Delivery:
    worker: str
    mode: str  # "none" (already there), "thin" or "full"
    sent: int  # bytes of the archive sent (thin or full tarball, or OCI layout)
    full_size: int  # bytes of the full tarball, for comparison
    seconds: float
    ref: str = ""  # what the worker knows the image by: its ID, or its content tag
    started: float = 0.0  # wall clock, when its delivery began
    codec: str = NONE  # what the archive went in
    wire: int = 0  # bytes on the wire: `sent`, or fewer compressed


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


def deliver(
    engine: Engine,
    link: Link,
    image: OnDemand,
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
    worker = link.worker

    def done(mode: str, sent: Sent | None, ref: str, full: int = 0) -> Delivery:
        codec, raw, wire = (sent.codec, sent.raw, sent.wire) if sent else (NONE, 0, 0)
        link.emit(WorkerTransfer(worker, wire, wire, mode, codec, raw))
        took = time.monotonic() - started
        return Delivery(worker, mode, raw, full, took, ref, wall, codec, wire)

    if ref := engine.find_image(image_id, diff_ids):
        return done("none", None, ref)
    # The containerd store refuses thin docker archives but takes thin OCI layouts.
    if containerd_store or link.facts.allows_thin(link.url):
        skip = _layers_held(engine, diff_ids, project)
        thin = _thin_for(image, skip, containerd_store) if skip else None
        if thin is not None:
            loaded = _send_thin(engine, link, image, thin)
            if loaded is not None:
                return done("thin", loaded[0], loaded[1], image.full_size())
    artifact = image.get()
    try:
        sent = _in_pieces(engine, link, image, artifact, containerd_store)
        sent = sent or send(engine, link, artifact.path, "full")
    except EngineRefused as exc:
        raise InfraError(f"loading the image into worker {worker} failed: {exc}") from exc
    ref = engine.find_image(image_id, diff_ids)
    if ref is None:
        raise InfraError(f"worker {worker} loaded the tarball but lacks image {image_id[:19]}")
    return done("full", sent, ref, artifact.size)


def _in_pieces(
    engine: Engine, link: Link, image: OnDemand, artifact: Artifact, containerd_store: bool
) -> Sent | None:
    """The full load as pieces (see pieces), where it comes apart and the worker is
    remote (on a unix socket the unpacking and the sending share one machine) and takes
    thin loads: the top piece is a thin docker archive, or on the containerd store an
    OCI layout. None where not, or when a piece is refused (the caller then sends the
    full tarball, as to any worker)."""
    remote = not link.url.startswith(("unix://", "npipe://"))
    if not remote or not (containerd_store or link.facts.allows_thin(link.url)):
        return None
    planned = pieces.plan(artifact)
    if planned is None:
        return None
    spans, saved = planned
    if containerd_store:
        # The store refuses a docker archive that leaves out layers: so one piece image
        # of the bottom layers, and the rest as one OCI layout.
        spans = [spans[0], (spans[0][1], spans[-1][1])]
    top = spans[-1][0]
    if containerd_store:
        layout = oci_from_save(image, top)
        if layout is None:
            return None
        last = layout.path
    else:
        last = thin_tarball(artifact, layers.omitted_files(saved, top), top)
    made = [pieces.piece_tarball(artifact, start, end) for start, end in spans[:-1]]
    try:
        return pieces.load_in_order(engine, link, [p.path for p in made] + [last], "full")
    except EngineRefused:
        if containerd_store:  # as after a refused thin layout: the tag may name a wreck
            with contextlib.suppress(*ENGINE_FAILURES):
                engine.untag(content_tag(image.image_id))
        return None
    finally:
        for piece in made:  # their layers stay: the image, or the next try, holds them
            with contextlib.suppress(*ENGINE_FAILURES):
                engine.untag(piece.tag)


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
            source = file_chunks(image.get().path, lambda sent: None)
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


def _send_thin(engine: Engine, link: Link, image: OnDemand, thin: Thin) -> tuple[Sent, str] | None:
    """Load the thin tarball; what was sent and what the worker now knows the image by,
    or None and the caller loads the full one.

    Only the engine's error over a whole docker archive marks the worker as refusing thin
    loads: a cut-off tarball fails on any engine, and remembering that would cost the
    worker thin loads for good. A refused OCI layout is not remembered: the store takes
    one when it holds the blobs left out, which the next image may find there.
    """
    sent = thin.path.stat()
    try:
        loaded = send(engine, link, thin.path, "thin")
    except EngineRefused:
        if thin.oci:
            # The store may keep the image it failed to unpack, under our tag: containers
            # created from that fail, so the tag must go before the full load.
            with contextlib.suppress(*ENGINE_FAILURES):
                engine.untag(content_tag(image.image_id))
        if _keep_if_whole(thin, sent, image.image_id) and not thin.oci:
            link.facts.refuse_thin(link.url)
        return None
    if ref := engine.find_image(image.image_id, image.diff_ids()):
        return loaded, ref
    _keep_if_whole(thin, sent, image.image_id)  # loaded without error, yet no image
    return None
