"""Which blob the build engine saves each compressed layer as.

A layer BuildKit built on a containerd-store engine is saved as a gzip blob, whose digest
is not its diff ID: a thin tarball cut by content could not tell that a worker holds it,
and would send it again after every change above it. Every tarball shardrun writes (a
full save, a thin one, an OCI layout) notes the blob of each such layer in
.shardrun/cache/blobs.json, and the next cut leaves those blobs out too.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from shardrun.state import foreign, layout
from shardrun.state.files import exclusive, write_atomic

_lock = threading.Lock()
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# A pair is about 150 bytes: 8 MB notes some 50,000 layers, more than a cache ever meets.
_MAX = 8_000_000
_THEN = "layers are cut as if none were noted, and it is written anew"


def known(cache_dir: Path, diff_ids: Iterable[str]) -> set[str]:
    """The blob digests noted for these diff IDs."""
    noted = _read(cache_dir)
    return {noted[d] for d in diff_ids if d in noted}


def learn(cache_dir: Path, found: Mapping[str, str]) -> None:
    """Note diff ID -> blob digest pairs (those of compressed layers)."""
    if not found:
        return
    with _lock, exclusive(layout.blob_names(cache_dir)):
        noted = _read(cache_dir)
        if found.items() <= noted.items():
            return
        write_atomic(layout.blob_names(cache_dir), json.dumps({**noted, **found}, indent=1))


def _read(cache_dir: Path) -> dict[str, str]:
    """The pairs noted, each a pair of digests; none (with one line) if the file is not a
    regular file in the cache holding a JSON object: a state file, yet anything may stand
    in its place (state/foreign.py)."""
    noted = foreign.read_state(layout.blob_names(cache_dir), _MAX, 1, _THEN)
    if not isinstance(noted, dict):
        if noted is not None:
            foreign.ignoring(layout.blob_names(cache_dir), "not a JSON object", _THEN)
        return {}
    return {d: b for d, b in noted.items() if _is_digest(d) and _is_digest(b)}


def _is_digest(value: object) -> bool:
    return isinstance(value, str) and bool(_DIGEST.fullmatch(value))
