"""A full load in pieces, so the worker unpacks the lower layers while the upper ones are
still on their way.

An engine takes a load's whole archive in before it unpacks a layer, and then unpacks them
one by one: on a slow link that is seconds after the last byte in which the link is idle
(4 s of a 21 s load of 455 MB over 100 Mbit/s, measured on dockerd 20.10). So the image
goes as a few archives, bottom layers first: each but the last is an image of its own,
the layers below its top one with a config of just those layers (its ID the config's
digest, tagged `shardrun/image:<that>` and labelled like the project's images, so `clean`
knows it), carrying only the layers the archive before it did not; the last is the image's
thin tarball above them. The next archive goes out while the one before it unpacks, all
but its last block: that is held until the one before is loaded, since its layers are
what this one leaves out. The piece images are untagged once the image is there (their
layers stay: the image holds them).

Cut only at layer bounds, into pieces of at least LEAST bytes; not for an archive whose
layer files link to others. The containerd image store refuses a docker archive that
leaves out layers, so there the image goes as two: a piece image of the bottom layers,
then the rest as an OCI layout (deliver).
"""

from __future__ import annotations

import hashlib
import io
import json
import queue
import tarfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardrun.distribute.artifact import layers
from shardrun.distribute.artifact.tarball import Artifact
from shardrun.distribute.send import Link, Sent, send
from shardrun.distribute.worker_facts import Transfer
from shardrun.engine.api import Engine
from shardrun.model.errors import InfraError
from shardrun.model.events import Event
from shardrun.model.image_ref import content_tag
from shardrun.state import layout
from shardrun.state.files import exclusive, temp_file

LEAST = 32 << 20  # bytes: a smaller piece saves less than its load's own start costs
MOST = 6  # pieces


def cuts(sizes: Sequence[int], least: int | None = None, most: int = MOST) -> list[tuple[int, int]]:
    """Layer spans [start, end), bottom first, covering every layer: a span closes once it
    holds `least` bytes (LEAST; or a share of the image large enough for at most `most`
    spans), the top one takes what is left. Pure."""
    least = max(LEAST if least is None else least, sum(sizes) // most + 1)
    spans, start, held = [], 0, 0
    for index, size in enumerate(sizes):
        held += size
        if held >= least and index + 1 < len(sizes):
            spans.append((start, index + 1))
            start, held = index + 1, 0
    spans.append((start, len(sizes)))
    return spans


@dataclass(frozen=True)
class Piece:
    path: Path
    image_id: str  # of the image it makes: a piece image's, or the image's own
    tag: str = ""  # a piece image's tag, to remove once the image is there


def plan(artifact: Artifact) -> tuple[list[tuple[int, int]], layers.SavedImage] | None:
    """The spans the image's full tarball comes apart into; None where it does not
    (fewer than two, or a layer file that links to another)."""
    saved = layers.read_saved(artifact.path)
    if saved.links:
        return None
    with tarfile.open(artifact.path) as tar:
        sizes = [tar.getmember(path).size for path in saved.layer_paths]
    spans = cuts(sizes)
    return (spans, saved) if len(spans) > 1 else None


def piece_config(config: bytes, diff_ids: Sequence[str]) -> bytes:
    """The config of a piece image: the image's platform and labels, the layers given."""
    image = json.loads(config)
    piece = {
        "architecture": image.get("architecture", "amd64"),
        "os": image.get("os", "linux"),
        "config": {"Labels": (image.get("config") or {}).get("Labels") or {}},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    if image.get("variant"):
        piece["variant"] = image["variant"]
    return json.dumps(piece, sort_keys=True, separators=(",", ":")).encode()


def piece_tarball(artifact: Artifact, start: int, end: int) -> Piece:
    """The cached archive of layers [start, end) as the image of layers [0, end), written
    unless a whole one is there. Raises DiskFull if the disk fills up."""
    with tarfile.open(artifact.path) as tar:
        manifest = layers.read_manifest(tar)
    paths = list(manifest.entry["Layers"])
    config = piece_config(manifest.config, manifest.diff_ids[:end])
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    path = layout.piece_tarball(artifact.path.parent, artifact.image_id, start, end)
    omit = set(paths[:start])
    with exclusive(path):
        if not layers.is_complete(path, image_id, omit):
            with temp_file(path, "a piece of the image", artifact.size) as tmp:
                _write_piece(artifact.path, paths, start, end, config, image_id, tmp.file)
                tmp.publish()
    return Piece(path, image_id, content_tag(image_id))


def _write_piece(
    full: Path,
    paths: list[str],
    start: int,
    end: int,
    config: bytes,
    image_id: str,
    out: BinaryIO,
) -> None:
    wanted = set(paths[start:end])
    folders = {p.rpartition("/")[0] for p in wanted}
    manifest = [{"Config": f"{image_id[7:]}.json", "RepoTags": [content_tag(image_id)],
                 "Layers": paths[:end]}]  # fmt: skip
    with (
        tarfile.open(full) as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as dst,
    ):
        for member in src:
            if member.name in wanted:
                dst.addfile(member, layers.member_file(src, member))
            elif member.isdir() and member.name.rstrip("/") in folders:
                dst.addfile(member)
        for name, data in ((f"{image_id[7:]}.json", config),
                           ("manifest.json", json.dumps(manifest).encode())):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            dst.addfile(info, io.BytesIO(data))


def load_in_order(engine: Engine, link: Link, archives: Sequence[Path], mode: str) -> Sent:
    """Load the archives in order, each sent while the one before it unpacks, all but its
    last block, which waits until that one is loaded. Raises what the first failed load
    raised (EngineRefused, TransportError, InfraError)."""
    count = len(archives)
    loaded = [threading.Event() for _ in archives]
    body_sent = [threading.Event() for _ in archives]
    outcome: list[Sent | BaseException | None] = [None] * count
    started = time.monotonic()

    def one(index: int) -> None:
        def before_tail() -> None:
            body_sent[index].set()
            if index:
                loaded[index - 1].wait()
                if not isinstance(outcome[index - 1], Sent):
                    raise InfraError("the piece below it was not loaded")

        try:
            outcome[index] = send(
                engine, link, archives[index], mode, before_tail=before_tail, record=False
            )
        except BaseException as exc:  # noqa: BLE001 - raised below, in the caller's thread
            outcome[index] = exc
        finally:
            body_sent[index].set()
            loaded[index].set()

    # Progress events go out from this thread only: the run's event stream takes them from
    # its own worker threads, not from the pieces' threads.
    emit, events = link.emit, queue.SimpleQueue[Event]()
    link.emit = events.put

    def relay_until(done: threading.Event) -> None:
        while not done.wait(0.1):
            while not events.empty():
                emit(events.get())
        while not events.empty():
            emit(events.get())

    try:
        for index in range(count):
            thread = threading.Thread(target=one, args=(index,), daemon=True, name=f"piece {index}")
            thread.start()
            relay_until(body_sent[index])  # the link is free: the next goes as this one unpacks
        for event in loaded:
            relay_until(event)
    finally:
        link.emit = emit
    for result in outcome:
        if isinstance(result, BaseException):
            raise result
    sent = [r for r in outcome if isinstance(r, Sent)]
    total = Sent(
        sent[-1].codec,
        sum(s.raw for s in sent),
        sum(s.wire for s in sent),
        time.monotonic() - started,
        sum(s.link_seconds for s in sent),
    )
    link.facts.record(
        link.url,
        Transfer(
            total.codec, total.raw, total.wire, total.seconds, total.link_seconds, time.time()
        ),
    )
    return total
