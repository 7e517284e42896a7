"""Hypothesis strategies of damaged JSON files, for the property tests of the readers of
foreign files: a valid document with one value replaced (by another type, a non-finite or
huge number, a hostile string, a deeply nested value), cut short, or with bytes changed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([-1, 0, 2**63, 10**30, -(10**30)]),
    st.floats(),  # NaN and the infinities: json.dumps writes them, JSON has none
    st.sampled_from([1e308, -1e308, 1e7 + 1, 5e-324]),
    st.text(max_size=20),
    st.sampled_from(
        [
            "../../etc/passwd",
            "/etc/shadow",
            "a/b",
            "..",
            "",
            "x" * 5000,
            "soon",
            "\x00",
            "line\nbreak",
            "{index}",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


deep = st.builds(_nested, st.sampled_from([9, 33, 200, 5000]), st.sampled_from(["list", "dict"]))


def places(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value, as the keys and indexes that reach it."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += places(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += places(value, (*prefix, i))
    return found


def _replace(doc: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, new)}
    return [_replace(v, rest, new) if i == head else v for i, v in enumerate(doc)]


def _dumps(doc: Any) -> bytes:
    try:
        return json.dumps(doc).encode()
    except RecursionError:  # deeper than json.dumps goes: spell it out
        return b"[" * 100_000 + b"]" * 100_000


@st.composite
def damaged(draw: st.DrawFn, valid: Any) -> bytes:
    """`valid`, as JSON bytes, damaged in one of the ways files are."""
    how = draw(st.sampled_from(["value", "value", "value", "deep", "cut", "bytes"]))
    text = json.dumps(valid).encode()
    if how in ("value", "deep"):
        path = draw(st.sampled_from(places(valid)))
        return _dumps(_replace(valid, path, draw(values if how == "value" else deep)))
    if how == "cut":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    data = bytearray(text)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def write(path: Path, data: st.DataObject, valid: Any, limit: int) -> None:
    """`path` as a damaged version of `valid`, now and then one over `limit` bytes (valid
    JSON then zeros: sparse, so an oversized file costs no disk)."""
    if data.draw(st.integers(0, 7)) == 0:
        path.write_text(json.dumps(valid))
        os.truncate(path, limit + data.draw(st.integers(1, 10**9)))
    else:
        path.write_bytes(data.draw(damaged(valid)))
