"""model/text: a count with its noun in the right number (issue 26: "1 shards")."""

from __future__ import annotations

import pytest

from shardrun.model.text import counted


@pytest.mark.parametrize(
    ("count", "noun", "plural", "text"),
    [
        (0, "shard", "", "0 shards"),
        (1, "shard", "", "1 shard"),
        (2, "shard", "", "2 shards"),
        (1, "unused image tag", "", "1 unused image tag"),
        (3, "cache file", "", "3 cache files"),
        (1, "entry", "entries", "1 entry"),
        (2, "entry", "entries", "2 entries"),
    ],
)
def test_counted(count: int, noun: str, plural: str, text: str) -> None:
    assert counted(count, noun, plural) == text
