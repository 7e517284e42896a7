"""The one image of a `docker save` archive: manifest.json and the config it names.

The archive may come from another machine (`run --image`): what it says is read within
bounds and its shape checked before anything of it is used, and every name it gives is a
relative path inside it, checked before it is looked up.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from shardrun.model.image_ref import CONTENT_REPO
from shardrun.state.foreign import Refused, parse_json, relative_name


@dataclass(frozen=True)
class Manifest:
    """The one image of a `docker save` archive: its manifest.json entry and its config."""

    entry: dict  # Config, Layers (the layer files, bottom first), RepoTags
    config: bytes  # as saved: its sha256 is the image ID on a graph-driver engine

    @property
    def diff_ids(self) -> list[str]:
        return _diff_ids(self.config)


MANIFEST_LIMIT = 4 << 20  # one entry naming at most MAX_LAYERS files: some 100 KB
CONFIG_LIMIT = 8 << 20  # an image config; its history grows with the layers
MAX_LAYERS = 1000  # an overlay2 image holds at most 128
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]{64}")
# What reading one member of a damaged archive raises, besides a missing name.
UNREADABLE_MEMBER = (OSError, tarfile.TarError, ValueError)


def read_manifest(tar: tarfile.TarFile) -> Manifest:
    """The archive's one image; one of layers.UNREADABLE if it holds not exactly one,
    lacks its manifest or config, or they are not the shape `docker save` writes
    (foreign.Refused, a ValueError, names what is wrong). Its names are relative paths."""
    manifest = _json_member(tar, "manifest.json", MANIFEST_LIMIT)
    if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise Refused("manifest.json does not list exactly one image")
    entry = manifest[0]
    layers = entry.get("Layers")
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise Refused(f"manifest.json's Layers is not a list of at most {MAX_LAYERS} files")
    for name in (entry.get("Config"), *layers):
        relative_name(name)  # before it is looked up: no path out of the archive
    tags = entry.get("RepoTags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise Refused("manifest.json's RepoTags is not a list of names")
    config = _bounded(tar, entry["Config"], CONFIG_LIMIT)
    _diff_ids(config)
    return Manifest(entry, config)


def archive_image_id(tar: tarfile.TarFile, manifest: Manifest) -> str:
    """The ID the archive's image had on the engine that saved it. A graph-driver engine's
    is its config's digest; the containerd store's is its manifest's digest, which shardrun's
    content tag names and that store's `docker save` writes as a blob beside the config. The
    tag is taken only when that blob is there, hashes to it and names this config."""
    config_id = "sha256:" + hashlib.sha256(manifest.config).hexdigest()
    for tag in manifest.entry.get("RepoTags") or []:
        repo, _, digest = str(tag).partition(":")
        if repo != CONTENT_REPO or not _HEX.fullmatch(digest) or f"sha256:{digest}" == config_id:
            continue
        try:
            blob = _bounded(tar, f"blobs/sha256/{digest}", MANIFEST_LIMIT)
            named = parse_json(blob)
        except (KeyError, Refused, *UNREADABLE_MEMBER):
            continue
        config = named.get("config") if isinstance(named, dict) else None
        if (
            hashlib.sha256(blob).hexdigest() == digest
            and isinstance(config, dict)
            and config.get("digest") == config_id
        ):
            return f"sha256:{digest}"
    return config_id


def _bounded(tar: tarfile.TarFile, name: str, limit: int) -> bytes:
    data = member_file(tar, name).read(limit + 1)
    if len(data) > limit:
        raise Refused(f"{name} is over the {limit >> 20} MiB it may take")
    return data


def _json_member(tar: tarfile.TarFile, name: str, limit: int) -> object:
    data = _bounded(tar, name, limit)
    try:
        return parse_json(data)
    except Refused as exc:
        raise Refused(f"{name}: {exc}") from None


def _diff_ids(config: bytes) -> list[str]:
    """The layers a config lists, bottom first; Refused if that is not its shape."""
    try:
        image = parse_json(config)
    except Refused as exc:
        raise Refused(f"the image config: {exc}") from None
    rootfs = image.get("rootfs") if isinstance(image, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and _DIGEST.fullmatch(d) for d in diff_ids
    ):
        raise Refused("the image config lists no layers (rootfs.diff_ids)")
    return list(diff_ids)


def member_file(tar: tarfile.TarFile, name: str | tarfile.TarInfo) -> BinaryIO:
    """A file of the archive, or the file a link names; KeyError if it has none of that
    name (or not a file). One link is followed, no more: `docker save` links a layer file
    to its first copy, and tarfile would follow a loop of links until RecursionError."""
    member = tar.getmember(name) if isinstance(name, str) else name
    if member.issym() or member.islnk():
        member = tar.getmember(resolve_link(member))
    found = tar.extractfile(member) if member.isfile() else None
    if found is None:
        raise KeyError(f"{name} is not a file in the archive")
    return found  # type: ignore[return-value]  # an IO[bytes] reader, as BinaryIO needs


def resolve_link(member: tarfile.TarInfo) -> str:
    """The member a link points at: a hard link names it from the archive's root, a
    symlink relative to its own folder."""
    if member.islnk() or member.linkname.startswith("/"):
        path = member.linkname
    else:
        path = posixpath.join(posixpath.dirname(member.name), member.linkname)
    return posixpath.normpath("/" + path).lstrip("/")
