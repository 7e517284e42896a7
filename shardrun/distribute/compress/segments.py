"""An archive as byte ranges, so that a layer's bytes are compressed once for a run
whatever the archives that carry it.

The workers of one run may get the same layer in different archives: a graph-driver
engine a piece image and a thin docker archive, a containerd-store engine an OCI layout
(pieces, deliver). Compressing each archive whole would compress those layers once per
archive. Instead a compressed archive is the concatenation of its ranges, each compressed
on its own (gzip members and zstd frames may follow one another in a stream, and both
decode as the whole): the data of every large layer blob is a range keyed by its content
digest, which the run compresses once and every archive holding it reuses; the bytes
between (tar headers, configs, small files) are ranges of the archive's own.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from shardrun.distribute.artifact import layers

# A blob smaller than this is compressed with the archive's own bytes: sharing it saves
# less than starting its compression costs.
SHARED_LEAST = 1 << 20
_BLOBS = "blobs/sha256/"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Segment:
    start: int  # offset in the archive
    end: int
    key: str = ""  # the content digest of the layer blob these bytes are; "" if none


def cut(archive: BinaryIO, size: int) -> list[Segment]:
    """The archive (`size` bytes) as ranges in order, covering it whole: the data of each
    layer blob of SHARED_LEAST bytes or more on its own, keyed by its digest, and the rest."""
    segments: list[Segment] = []
    at = 0
    with tarfile.open(fileobj=archive) as tar:
        keys = _layer_digests(tar)
        for member in tar:
            key = keys.get(member.name, "")
            if not key or not member.isfile() or member.size < SHARED_LEAST:
                continue
            start = member.offset_data
            if start > at:
                segments.append(Segment(at, start))
            segments.append(Segment(start, start + member.size, key))
            at = start + member.size
    if size > at:
        segments.append(Segment(at, size))
    return segments


def _layer_digests(tar: tarfile.TarFile) -> dict[str, str]:
    """Member name -> the content digest of the blob it holds, where that is known for
    sure: a `blobs/sha256/<hex>` name is its digest (an OCI layout, a newer engine's save);
    a docker archive's uncompressed `layer.tar` is its layer's diff ID (manifest.json
    lists the layer files in the order of the config's diff IDs)."""
    found = {
        m.name: "sha256:" + m.name.removeprefix(_BLOBS)
        for m in tar.getmembers()
        if m.isfile() and m.name.startswith(_BLOBS) and len(m.name) == len(_BLOBS) + 64
    }
    try:
        manifest = layers.read_manifest(tar)
        pairs = list(zip(manifest.entry["Layers"], manifest.diff_ids, strict=True))
    except layers.UNREADABLE:
        return found  # an OCI layout has no manifest.json
    for name, diff_id in pairs:
        if name in found or not name.endswith("layer.tar"):
            continue
        try:
            member = tar.getmember(name)
        except KeyError:
            continue  # left out of a thin tarball
        if member.isfile() and layers.member_file(tar, member).read(2) != _GZIP_MAGIC:
            found[name] = diff_id
    return found
