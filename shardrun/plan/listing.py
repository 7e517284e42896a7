"""What `shardrun list` prints: each shard in start order with its command, or a split
group with its files and expected time, then the split's expected makespan."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from shardrun.model.shard import Shard
from shardrun.plan import split


def lines(shards: Sequence[Shard], file_times: Mapping[str, float], slots: int) -> list[str]:
    """`slots`: the slots the makespan is reckoned on (`list` connects to no worker)."""
    width = max((len(s.name) for s in shards), default=0)
    out = []
    for s in shards:
        if s.files:  # a split group: its files, not the long command line
            expected = sum(split.estimates(s.files, file_times).values())
            shown = " ".join(s.files[:3]) + (
                f" ... ({len(s.files)} files)" if len(s.files) > 3 else ""
            )
            out.append(f"{s.name:<{width}}  ~{expected:.1f}s  {shown}")
            continue
        command = shlex.join(s.command) if s.command is not None else "(image CMD)"
        out.append(f"{s.name:<{width}}  {command}")
    groups = [s.files for s in shards if s.files]
    if groups:
        every = [f for group in groups for f in group]
        span = split.makespan(groups, split.estimates(every, file_times), slots)
        out.append(
            f"split: {len(every)} files in {len(groups)} groups, expected makespan "
            f"~{span:.1f}s on {slots} slots (this machine's CPUs)"
        )
    return out
