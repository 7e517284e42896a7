"""No NUL character anywhere in a config: checked once over the whole parsed document."""

from __future__ import annotations

from typing import Any

from shardrun.model.values import fail


def refuse_nul(data: Any, top: str) -> None:
    """Fail on the first string (a value or a key) holding a NUL character.

    TOML writes one as "\\u0000", but nothing downstream can carry it: an argv, an
    environment, a path or a label is a C string to the engine and the kernel, so the
    engine answers with an error that reads as a lost worker (issue 25). Checked once over
    the whole document, so no field can be missed, old or new.
    """
    # A loop, not recursion: parse() is also given data nested deeper than Python
    # recurses; and each path is a link to its parent's, spelled out only for the message,
    # so the cost stays linear in the document however deep. Depth first, in the file's
    # order, so the first NUL is the one named.
    stack: list[tuple[Any, _Path, bool]] = [(data, None, False)]
    while stack:
        value, path, nul_key = stack.pop()
        if nul_key:
            fail(_spelled(top, path), "the key holds a NUL character (\\u0000)", _NUL_FIX)
        if isinstance(value, str) and "\0" in value:
            fail(_spelled(top, path), "holds a NUL character (\\u0000)", _NUL_FIX)
        if isinstance(value, dict):
            items = [(v, (path, k), "\0" in k) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(v, (path, i), False) for i, v in enumerate(value, 1)]
        else:
            continue
        stack += reversed(items)


# A key path as (parent, key or 1-based index), None at the top.
_Path = tuple[Any, str | int] | None


def _spelled(top: str, path: _Path) -> str:
    """`shard[1].env.TOKEN`, as every message of the loader names a key."""
    parts: list[str | int] = []
    while path is not None:
        path, part = path
        parts.append(part)
    named = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in reversed(parts)]
    if named and not isinstance(parts[-1], int) and top.endswith(": "):
        named[0] = named[0][1:]  # "shards.toml: shard", as join() spells the first key
    return top + "".join(named)


_NUL_FIX = "remove it: commands, environments, paths and labels cannot carry one"
