"""A thin OCI image layout cut from a `docker save` stream, for the containerd image store.

That store refuses a docker archive that leaves out layers it holds, but takes an OCI
layout (`oci-layout`, `index.json`, `blobs/sha256/...`) holding only the missing layer
blobs, when the manifest names every layer by its uncompressed digest (its diff ID) and
the store already has the blobs it leaves out (docs/workers.md). Pure: the
stream comes from the build engine, the file goes to `Engine.load`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shardrun.distribute.artifact.layers import (
    NotStreamable,
    chunk_reader,
    compressed_pairs,
    copy_hashing,
    member_file,
    resolve_link,
)
from shardrun.model.image_ref import content_tag

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# Names of the engine's tag, as Docker's own OCI save writes them: the store takes the
# image's name from the first, other tools read the second.
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"

_PLACEHOLDER = "blobs/sha256/" + "0" * 64  # renamed in place once the digest is known
_SMALL = 1 << 20  # files kept in memory too: the config (the manifest comes last)
_NOT_BLOBS = {"manifest.json", "repositories", "index.json", "oci-layout"}


@dataclass(frozen=True)
class Layout:
    """What the written layout holds: the image's config digest (its ID on a
    graph-driver engine) and the layer digests it left out."""

    config_digest: str
    omitted: frozenset[str]


def write_from_save(
    chunks: Iterable[bytes], omit: AbstractSet[str], tag: str, out: BinaryIO
) -> Layout:
    """Write into `out` (seekable) an OCI layout of the image in the save stream `chunks`,
    without the layer blobs whose digest is in `omit` (diff IDs: a plain layer's digest),
    its index naming the image `tag`.

    Every file of the save is written as a blob under its content digest as it comes
    (the digest is known only at its end, so the header is written again then), and cut
    back out if it is a left-out layer or a copy of a blob already written. Raises
    NotStreamable when the stream is not one image or lacks a blob.
    """
    blobs: dict[str, str] = {}  # member name -> digest
    sizes: dict[str, int] = {}  # digest -> size
    gzipped: set[str] = set()  # digests of gzip-compressed blobs
    small: dict[str, bytes] = {}  # digest -> content, for the config
    links: dict[str, str] = {}
    manifest_json = b""
    written: set[str] = set()
    with tarfile.open(fileobj=chunk_reader(chunks), mode="r|", bufsize=1 << 20) as src:
        for member in src:
            if member.issym() or member.islnk():
                links[member.name] = resolve_link(member)
                continue
            if not member.isfile():
                continue
            data = member_file(src, member)
            if member.name == "manifest.json":
                manifest_json = data.read()
                continue
            if member.name in _NOT_BLOBS or posixpath.basename(member.name) in ("json", "VERSION"):
                continue
            start = out.tell()
            header = _header(_PLACEHOLDER, member.size)
            out.write(header)
            content = data.read(_SMALL)  # all of a small file, the head of a big one
            out.write(content)
            hasher = hashlib.sha256(content)
            if member.size > _SMALL:
                copy_hashing(data, out, hasher)
            digest = "sha256:" + hasher.hexdigest()
            if member.size <= _SMALL:
                small[digest] = content
            if content[:2] == b"\x1f\x8b":
                gzipped.add(digest)
            out.write(tarfile.NUL * (-member.size % tarfile.BLOCKSIZE))
            blobs[member.name], sizes[digest] = digest, member.size
            if digest in omit or digest in written:
                out.seek(start)
                out.truncate()
                continue
            written.add(digest)
            end = out.tell()
            out.seek(start)
            out.write(_header(_blob_name(digest), member.size))
            out.seek(end)
    for name, target in links.items():
        if target in blobs:
            blobs[name] = blobs[target]
    return _finish(out, manifest_json, blobs, sizes, small, omit, written, gzipped, tag)


def _finish(
    out: BinaryIO,
    manifest_json: bytes,
    blobs: dict[str, str],
    sizes: dict[str, int],
    small: dict[str, bytes],
    omit: AbstractSet[str],
    written: set[str],
    gzipped: set[str],
    tag: str,
) -> Layout:
    try:
        [entry] = json.loads(manifest_json)
        config_digest = blobs[entry["Config"]]
        config = json.loads(small[config_digest])
        diff_ids = list(config["rootfs"]["diff_ids"])
        layer_digests = [blobs[path] for path in entry["Layers"]]
    except (KeyError, ValueError, TypeError) as exc:
        raise NotStreamable(f"the save stream is not one docker archive image ({exc!r})") from exc
    if len(layer_digests) != len(diff_ids):
        raise NotStreamable("the saved manifest and config disagree on the layers")
    # A layer is named by its blob's digest: its diff ID when the blob is a plain tar,
    # another when the engine keeps it compressed (layers BuildKit built on the
    # containerd store). Only plain held layers are left out (omit holds diff IDs).
    missing = [d for d in layer_digests if d not in written and d not in omit]
    if missing or config_digest not in written:
        raise NotStreamable("the save stream lacks a blob its manifest names")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": sizes[config_digest]},
            "layers": [
                {"mediaType": GZIP_LAYER if d in gzipped else LAYER, "digest": d, "size": sizes[d]}
                for d in layer_digests
            ],
        },
        separators=(",", ":"),
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {
                        NAME_ANNOTATION: qualified(tag),
                        REF_ANNOTATION: tag.rpartition(":")[2],
                    },
                }
            ],
        },
        separators=(",", ":"),
    ).encode()
    _add(out, _blob_name(manifest_digest), manifest)
    _add(out, "index.json", index)
    _add(out, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    out.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
    return Layout(config_digest, frozenset(d for d in layer_digests if d in omit))


def is_complete(path: Path, image_id: str, omit: AbstractSet[str]) -> bool:
    """True if the layout at `path` is whole: its index names the image of `image_id`
    (by its content tag), its manifest and config are there, and every layer blob not in
    `omit`."""
    try:
        with tarfile.open(path) as tar:
            names = set(tar.getnames())
            index = json.load(member_file(tar, "index.json"))
            [described] = index["manifests"]
            manifest = json.load(member_file(tar, _blob_name(described["digest"])))
    except (OSError, tarfile.TarError, KeyError, ValueError, TypeError, AttributeError):
        return False
    name = (described.get("annotations") or {}).get(NAME_ANNOTATION)
    if name != qualified(content_tag(image_id)):
        return False
    wanted = [manifest.get("config", {}).get("digest", "")] + [
        layer["digest"] for layer in manifest.get("layers", []) if layer["digest"] not in omit
    ]
    return "oci-layout" in names and all(_blob_name(d) in names for d in wanted)


def compressed_blobs(path: Path) -> dict[str, str]:
    """diff ID -> blob digest of the layers this layout names by a compressed blob."""
    try:
        with tarfile.open(path) as tar:
            [described] = json.load(member_file(tar, "index.json"))["manifests"]
            manifest = json.load(member_file(tar, _blob_name(described["digest"])))
            config = json.load(member_file(tar, _blob_name(manifest["config"]["digest"])))
    except (OSError, tarfile.TarError, KeyError, ValueError, TypeError, AttributeError):
        return {}
    return compressed_pairs(
        config.get("rootfs", {}).get("diff_ids", []),
        [layer["digest"] for layer in manifest.get("layers", [])],
    )


def qualified(tag: str) -> str:
    """The fully qualified name the containerd store keeps an image under."""
    first = tag.split("/", 1)[0]
    if "/" not in tag or not ("." in first or ":" in first or first == "localhost"):
        tag = f"docker.io/{tag}" if "/" in tag else f"docker.io/library/{tag}"
    return tag


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(tarfile.GNU_FORMAT, tarfile.ENCODING, "surrogateescape")


def _add(out: BinaryIO, name: str, data: bytes) -> None:
    out.write(_header(name, len(data)))
    out.write(data)
    out.write(tarfile.NUL * (-len(data) % tarfile.BLOCKSIZE))
