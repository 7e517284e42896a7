"""Which codec the image goes to each worker in. Pure.

A worker's `compress` setting wins ("zstd", "gzip", "none"), unless the worker refused
that codec before. "auto" decides by measurement: never on a unix socket (the runner's
own machine: compressing only costs CPU); else by the last transfers to the worker in
each mode, the faster one, measured as archive bytes a second; a mode never measured
yet is tried where the figures leave the question open. The auto workers that compress
share one codec, so one compressed stream serves them all: zstd where every one of them
loads it (the containerd store), else gzip, which every engine loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shardrun.distribute.worker_facts import Transfer, WorkerFacts
from shardrun.model.transit import AUTO, GZIP, NONE, ZSTD

# A link that carried compressed bytes faster than this may be faster still raw: the
# worker daemons measured here take a raw archive in at 35-55 MB/s all told, which a
# compressed stream at this rate (about half the size) already matches, and unpack a
# compressed one more slowly. Below it, the link is what limits.
FAST_LINK = 25e6  # bytes a second on the wire
# Bytes on the wire below which a transfer says little about the link: the sender's socket
# buffer and the queues on the way take in the first few megabytes at once.
MEANINGFUL = 16 << 20


@dataclass(frozen=True)
class Target:
    """What the choice needs to know of a worker."""

    name: str
    url: str
    setting: str = AUTO
    containerd_store: bool = False


def choose(targets: Sequence[Target], facts: WorkerFacts) -> dict[str, str]:
    """Worker name -> codec."""
    chosen: dict[str, str] = {}
    compressing: list[Target] = []
    for target in targets:
        refused = facts.refused_codecs(target.url)
        if target.setting != AUTO:
            chosen[target.name] = NONE if target.setting in refused else target.setting
        elif _pays(target, facts):
            compressing.append(target)
        else:
            chosen[target.name] = NONE
    zstd_all = all(_loads(t, ZSTD, facts) for t in compressing)
    for target in compressing:
        codec = ZSTD if zstd_all else GZIP
        chosen[target.name] = codec if _loads(target, codec, facts) else NONE
    return chosen


def _loads(target: Target, codec: str, facts: WorkerFacts) -> bool:
    if codec in facts.refused_codecs(target.url):
        return False
    return codec == GZIP or target.containerd_store


def _pays(target: Target, facts: WorkerFacts) -> bool:
    """Whether compressing pays on the worker's link, as far as is known."""
    if target.url.startswith(("unix://", "npipe://")):
        return False
    seen = {c: t for c, t in facts.transfers(target.url).items() if t.wire >= MEANINGFUL}
    raw = seen.get(NONE)
    packed = _latest(t for c, t in seen.items() if c != NONE)
    if raw and packed:
        return packed.rate > raw.rate
    if packed:
        return packed.link_rate < FAST_LINK  # a fast link: measure it raw next time
    if raw:
        return raw.link_rate < FAST_LINK
    return True  # never measured: a remote link is more often slow than not


def _latest(transfers: Iterable[Transfer]) -> Transfer | None:
    found = list(transfers)
    return max(found, key=lambda t: t.at) if found else None
