"""Where a full load comes apart: at layer bounds, into pieces of at least LEAST bytes."""

from __future__ import annotations

import itertools
import json

import pytest

from shardrun.distribute.pieces import cuts, piece_config

MB = 1 << 20


@pytest.mark.parametrize(
    ("sizes", "spans"),
    [
        ([273 * MB, 168 * MB], [(0, 1), (1, 2)]),  # the Debian + Python image of the bench
        ([10 * MB], [(0, 1)]),  # one layer: one piece, nothing to overlap
        ([1, 1 * MB, 40 * MB, 40 * MB, 2], [(0, 3), (3, 4), (4, 5)]),  # small ones join
        ([20 * MB, 20 * MB, 20 * MB], [(0, 2), (2, 3)]),
        ([8 * MB] * 3, [(0, 3)]),  # too small to pay for a load of its own
    ],
)
def test_spans_close_at_least_bytes_and_the_top_takes_the_rest(sizes, spans):
    assert cuts(sizes, least=32 * MB) == spans


def test_a_large_image_of_many_layers_is_at_most_six_pieces():
    spans = cuts([100 * MB] * 40, least=32 * MB)
    assert len(spans) <= 6
    assert spans[0][0] == 0 and spans[-1][1] == 40
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_a_piece_config_keeps_the_platform_and_labels_and_names_its_layers():
    image = {
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "config": {"Labels": {"shardrun.project": "demo"}, "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:a", "sha256:b"]},
        "history": [{}, {}],
    }
    piece = json.loads(piece_config(json.dumps(image).encode(), ["sha256:a"]))
    assert piece == {
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "config": {"Labels": {"shardrun.project": "demo"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]},
    }
    # The same layers always make the same piece image (its ID is the config's digest).
    assert piece_config(json.dumps(image).encode(), ["sha256:a"]) == piece_config(
        json.dumps(image).encode(), ["sha256:a"]
    )
