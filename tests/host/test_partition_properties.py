"""Property tests of a CI matrix's plan (hypothesis, so not in tests/unit, which also
runs inside Dockerfile.test without it)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shardrun.plan import partition
from tests.unit.plan.test_partition import CONFIG, IMAGE, names, shards


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=30), st.integers(1, 6))
def test_improving_never_ends_later_than_lpt_and_keeps_every_shard_once(seconds, total):
    times = {f"s{i:02}": float(t) for i, t in enumerate(seconds)}
    plan = partition.make(shards(*times), total, times, {}, IMAGE, CONFIG)
    assert sorted(n for part in names(plan) for n in part) == sorted(times)
    loads, bound = [0.0] * total, max(max(times.values()), sum(times.values()) / total)
    for t in sorted(times.values(), reverse=True):  # plain LPT, for comparison
        loads[loads.index(min(loads))] += t
    assert bound - 1e-6 <= max(plan.expected) <= max(loads) + 1e-6
    if len(times) >= total:
        assert all(names(plan))
