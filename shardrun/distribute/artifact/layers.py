"""Which layers a worker lacks, and the thin tarball that carries only those. Pure.

`docker load` skips reading a layer file whose chain ID the engine already holds, so a
tarball may leave out the `layer.tar` of a lower prefix of layers the worker has, as long
as the config and every `Layers` entry of `manifest.json` stay (docs/workers.md).
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

    from _typeshed import WriteableBuffer as Buffer

# The one manifest reader; the thin-load code reaches it as layers.read_manifest too.
from shardrun.distribute.artifact.save_manifest import member_file, read_manifest, resolve_link
from shardrun.model.image_ref import chain_ids, content_tag

_COPY = 1 << 20


@dataclass(frozen=True)
class SavedImage:
    """What `docker save` wrote: the layer file paths in order and their diff IDs."""

    layer_paths: tuple[str, ...]
    diff_ids: tuple[str, ...]
    links: dict[str, str]  # member -> the member it links to (save dedupes equal layers)


# What reading a damaged or foreign archive raises: callers take any of them as "not one".
UNREADABLE = (OSError, tarfile.TarError, KeyError, ValueError, TypeError, AttributeError)


def read_saved(tarball: Path) -> SavedImage:
    with tarfile.open(tarball) as tar:
        manifest = read_manifest(tar)
        links = {m.name: resolve_link(m) for m in tar.getmembers() if m.issym() or m.islnk()}
    return SavedImage(
        layer_paths=tuple(manifest.entry["Layers"]),
        diff_ids=tuple(manifest.diff_ids),
        links=links,
    )


def held_prefix(diff_ids: Sequence[str], held: set[str]) -> int:
    """How many of an image's bottom layers (by diff ID) a worker holds (by chain ID)."""
    count = 0
    for chain in chain_ids(diff_ids):
        if chain not in held:
            break
        count += 1
    return count


def omitted_files(saved: SavedImage, skip: int) -> set[str]:
    """The layer files a thin tarball leaves out, keeping any a sent member links to."""
    omit = set(saved.layer_paths[:skip]) - set(saved.layer_paths[skip:])
    kept_targets = {target for member, target in saved.links.items() if member not in omit}
    return omit - kept_targets


def write_thin(tarball: Path, omit: set[str], dest: Path) -> None:
    """Copy `tarball` to `dest` without the `omit` members, streaming member by member."""
    with open(dest, "wb") as out:
        write_thin_to(tarball, omit, out)


def write_thin_to(tarball: Path, omit: set[str], out: BinaryIO) -> None:
    """write_thin into an open file: the cache writes through the one descriptor it made,
    so a temp file removed at exit is never created again by a late writer."""
    with (
        tarfile.open(tarball) as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as thin,
    ):
        for member in src:
            if member.name in omit:
                continue
            thin.addfile(member, src.extractfile(member) if member.isfile() else None)


def thin_size(tarball: Path, omit: set[str]) -> int:
    """About how many bytes the thin tarball takes: the full one less the omitted files."""
    with tarfile.open(tarball) as tar:
        left_out = sum(m.size for m in tar.getmembers() if m.name in omit)
    return max(tarball.stat().st_size - left_out, 0)


def is_complete(tarball: Path, image_id: str, omit: AbstractSet[str] = frozenset()) -> bool:
    """True if `tarball` is a whole `docker save` of exactly `image_id` under its content
    tag, less the `omit` layer files a thin one leaves out.

    The config blob's sha256 is the image ID (on a graph-driver engine; on the containerd
    store the ID is the manifest's digest, and the archive names the config by its own),
    the archive carries the image's content tag, and every other layer file the manifest
    names must be in it. A cut-off file fails: tarfile raises "unexpected end of
    data" when a member's data runs past the end, and `docker save` writes manifest.json
    after the layers (its folder is archived in name order), so a cut before it loses it.
    """
    try:
        with tarfile.open(tarball) as tar:
            names = set(tar.getnames())
            manifest = read_manifest(tar)
    except UNREADABLE:
        return False
    entry = manifest.entry
    digest = hashlib.sha256(manifest.config).hexdigest()
    if f"sha256:{digest}" != image_id and digest not in entry["Config"]:
        return False
    if content_tag(image_id) not in (entry.get("RepoTags") or []):
        return False  # saved by an older shardrun, by ID: no store but a graph driver finds it
    return all(layer in names for layer in entry["Layers"] if layer not in omit)


def compressed_blobs(tarball: Path) -> dict[str, str]:
    """diff ID -> blob digest of the layers a `docker save` (or a thin one) stores
    compressed: the save of a containerd-store engine names each layer file by its blob's
    digest, and layers BuildKit built there are gzip blobs, not their diff IDs."""
    try:
        with tarfile.open(tarball) as tar:
            manifest = read_manifest(tar)
        diff_ids = manifest.diff_ids
    except UNREADABLE:
        return {}
    return compressed_pairs(
        diff_ids,
        [
            "sha256:" + posixpath.basename(p)
            for p in manifest.entry.get("Layers", [])
            if p.startswith("blobs/sha256/")
        ],
    )


def compressed_pairs(diff_ids: list[str], blobs: list[str]) -> dict[str, str]:
    """diff ID -> blob digest, in layer order, where the two differ (a compressed blob);
    nothing when the lists disagree on the layers."""
    if len(diff_ids) != len(blobs):
        return {}
    return {d: b for d, b in zip(diff_ids, blobs, strict=True) if d != b}


class NotStreamable(Exception):
    """A save stream a thin tarball cannot be cut from on the fly (a kept member links to
    a layer file already left out, since docker save writes an equal layer once), or an
    OCI layout cannot be made of (a layer not named by its diff ID). The caller cuts the
    thin tarball from the full one, or loads the full one."""


def write_thin_from_stream(
    chunks: Iterable[bytes], omit_diff_ids: AbstractSet[str], out: BinaryIO
) -> set[str]:
    """A thin tarball straight from a `docker save` stream into `out` (seekable): each
    member is copied as it comes, and a layer file whose content digest (its diff ID) is
    in `omit_diff_ids` is cut back out of `out` once read. The full tarball is never kept:
    when every worker holds the lower layers, no one needs it. Returns the names left out.

    The layer files come before manifest.json in the stream, so which one is which can
    only be known from its content.
    """
    omitted: set[str] = set()
    links: dict[str, str] = {}
    with tarfile.open(fileobj=chunk_reader(chunks), mode="r|", bufsize=_COPY) as src:
        for member in src:
            start = out.tell()
            out.write(member.tobuf(tarfile.GNU_FORMAT, tarfile.ENCODING, "surrogateescape"))
            if member.issym() or member.islnk():
                links[member.name] = resolve_link(member)
            if not member.isfile():
                continue
            digest = copy_hashing(member_file(src, member), out) if member.size else None
            out.write(tarfile.NUL * (-member.size % tarfile.BLOCKSIZE))
            # By content, whatever the name: <id>/layer.tar, or blobs/sha256/<digest>.
            if digest is not None and f"sha256:{digest}" in omit_diff_ids:
                out.seek(start)
                out.truncate()
                omitted.add(member.name)
    if any(target in omitted for name, target in links.items() if name not in omitted):
        raise NotStreamable("a kept member links to a left-out layer file")
    out.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))  # the end of the archive
    return omitted


def copy_hashing(data: BinaryIO, out: BinaryIO, digest: Hash | None = None) -> str:
    """Copy `data` to `out`; the sha256 of what was copied (added to `digest`, a hashlib
    object already fed what came before, if given)."""
    digest = digest or hashlib.sha256()
    while block := data.read(_COPY):
        out.write(block)
        digest.update(block)
    return digest.hexdigest()


def chunk_reader(chunks: Iterable[bytes]) -> io.RawIOBase:
    """An iterator of byte chunks as a readable file, for tarfile's stream mode."""
    return _ChunkReader(chunks)


class _ChunkReader(io.RawIOBase):
    """An iterator of byte chunks as a readable file, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._left = memoryview(b"")  # sliced without copying

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        while not self._left:
            self._left = memoryview(next(self._chunks, b""))
            if not self._left:
                return 0
        out = memoryview(buffer).cast("B")
        size = min(len(out), len(self._left))
        out[:size] = self._left[:size]
        self._left = self._left[size:]
        return size
