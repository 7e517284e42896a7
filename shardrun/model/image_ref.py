"""How shardrun names an image on any engine: its content tag and its layers' chain IDs.

Pure, and below both the engine layer and distribution, which each need them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

# Every tarball shardrun sends names its image with this tag (RepoTags of a docker archive,
# the name annotations of an OCI layout). On the containerd image store an image's ID is
# its manifest's digest, not its config's, so the build engine's ID finds nothing there:
# the tag, named after that ID, does, on either store.
CONTENT_REPO = "shardrun/image"


def content_tag(image_id: str) -> str:
    return f"{CONTENT_REPO}:{image_id.removeprefix('sha256:')}"


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The OCI chain ID of each prefix of an image's layers."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            digest = hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
            chains.append(f"sha256:{digest}")
    return chains


def held_chain_ids(images_diff_ids: Iterable[Sequence[str]]) -> set[str]:
    """Every chain ID a worker holds, from the RootFS layers of each of its images."""
    held: set[str] = set()
    for diff_ids in images_diff_ids:
        held.update(chain_ids(diff_ids))
    return held
