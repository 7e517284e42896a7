"""Which blob the build engine saves each compressed layer as.

A layer BuildKit built on a containerd-store engine is saved as a gzip blob, whose digest
is not its diff ID: a thin tarball cut by content could not tell that a worker holds it,
and would send it again after every change above it. Every tarball shardrun writes (a
full save, a thin one, an OCI layout) notes the blob of each such layer in
.shardrun/cache/blobs.json, and the next cut leaves those blobs out too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from shardrun.state import layout
from shardrun.state.files import exclusive, write_atomic

_lock = threading.Lock()


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
    try:
        noted = json.loads(layout.blob_names(cache_dir).read_text())
    except (OSError, ValueError):
        return {}
    return noted if isinstance(noted, dict) else {}
