"""Byte counts and transfers as people read them: "455.0 MB as 176.1 MB zstd in 14.1s"."""

from __future__ import annotations

from shardrun.model.transit import NONE


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def transfer_text(sent: int, codec: str, wire: int, seconds: float = 0.0, full: int = 0) -> str:
    """`sent` archive bytes (`of` the `full` tarball's), `as` `wire` bytes in `codec`
    where compressed, `in` `seconds` at the rate on the wire, where given."""
    text = size_text(sent) + (f" of {size_text(full)}" if full and full != sent else "")
    if codec != NONE:
        text += f" as {size_text(wire)} {codec}"
    if seconds > 0:
        text += f" in {seconds:.1f}s ({size_text((wire or sent) / seconds)}/s)"
    return text
