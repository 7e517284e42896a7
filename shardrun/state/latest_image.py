"""The latest build's image ID, .shardrun/image-id: the image `workers` looks for on each
worker, and one `clean` keeps the tag of.

shardrun writes it, but anything may stand there by the time it is read (a FIFO, a link
out of .shardrun, a file of garbage, another tool's doing), so it is read as a foreign
file (state/foreign.py); one that is not an image ID is no build, with one line.
"""

from __future__ import annotations

import re
from pathlib import Path

from shardrun.state import foreign, layout
from shardrun.state.files import write_atomic

# What an engine's image ID is (a config's digest); what record_latest writes.
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
_MAX = 256  # an ID and its newline are 72 bytes
_THEN = "taken as no build until the next one writes it"


def record_content(state_dir: Path, content: str) -> None:
    """Remember the latest image's content digest, for `list` to say what would be reused."""
    write_atomic(layout.latest_content(state_dir), content + "\n")


def read_content(state_dir: Path) -> str | None:
    """The latest image's content digest; None if none was recorded or it is no digest."""
    path = layout.latest_content(state_dir)
    data = foreign.read_state_bytes(path, _MAX, _THEN)
    text = data.decode("ascii", errors="replace").strip() if data is not None else ""
    if data is not None and not IMAGE_ID.fullmatch(text):
        foreign.ignoring(path, "not a content digest", _THEN)
    return text if IMAGE_ID.fullmatch(text) else None


def read(state_dir: Path) -> str | None:
    """The latest build's image ID; None if there is none, or (with one line on stderr)
    if the file is not a regular file inside `state_dir` holding one."""
    path = layout.latest_image(state_dir)
    data = foreign.read_state_bytes(path, _MAX, _THEN)
    if data is None:
        return None
    text = data.decode("ascii", errors="replace").strip()
    if not IMAGE_ID.fullmatch(text):
        foreign.ignoring(path, "not an image ID", _THEN)
        return None
    return text
