"""What `shardrun list` prints: each shard in start order with its command, or a split
group with its files and expected time, then the split's expected makespan."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from shardrun.model.shard import Shard
from shardrun.model.text import counted
from shardrun.plan import affinity, split
from shardrun.plan.affinity import NO_SETUP, Setup
from shardrun.plan.partition import Plan
from shardrun.state.results_record import Passed


def lines(
    shards: Sequence[Shard],
    file_times: Mapping[str, float],
    slots: int,
    setup: Setup = NO_SETUP,
    together: Sequence[str] = (),
    reused: Mapping[str, Passed] = MappingProxyType({}),
) -> list[str]:
    """`slots`: the slots the makespan is reckoned on (`list` connects to no worker).
    A split group shows its expected seconds (its setup's too) and its directories,
    whole or cut. `reused`: the shards that passed on the latest image's content, which
    a run reuses if the image it builds is of that content."""
    width = max((len(s.name) for s in shards), default=0)
    every = [f for s in shards for f in s.files]
    whole_sizes = affinity.sizes(every, together)
    out, groups = [], []
    for s in shards:
        if s.files:  # a split group: its directories, not the long command line
            expected = affinity.seconds(s.files, file_times, setup, together)
            groups.append(expected)
            shown = affinity.describe(s.files, whole_sizes, together)
            out.append(f"{s.name:<{width}}  ~{expected:.1f}s  {shown}  {_what(s)}")
        else:
            out.append(f"{s.name:<{width}}  {_what(s)}")
        if s.name in reused:
            out[-1] += f"  (reused if the image is unchanged: passed in run {reused[s.name].run})"
    if groups:
        out.append(
            f"split: {counted(len(every), 'file')} in {counted(len(groups), 'group')}, expected "
            f"makespan ~{split.span(groups, slots):.1f}s on {counted(slots, 'slot')} "
            "(this machine's CPUs)"
            + (
                f", with {setup.base:.1f}s a group and {setup.per_dir:.1f}s a directory of setup"
                if setup != NO_SETUP
                else ""
            )
        )
    return out


def _what(s: Shard) -> str:
    """A split group's first files, else the shard's command."""
    if s.files:
        more = f" ... ({len(s.files)} files)" if len(s.files) > 3 else ""
        return " ".join(s.files[:3]) + more
    return shlex.join(s.command) if s.command is not None else "(image CMD)"


def partition_lines(plan: Plan, where: str, index: int | None) -> list[str]:
    """The shards of partition `index` (None: of every partition) with the seconds the
    build job expected of each, then every partition's expected time and the makespan."""
    out = []
    for k in range(1, plan.total + 1) if index is None else (index,):
        part = plan.partitions[k - 1]
        seconds = plan.seconds[k - 1] if plan.seconds else (None,) * len(part)
        files = sum(len(s.files) for s in part)
        out.append(
            f"partition {k}/{plan.total} of {where}: {counted(len(part), 'shard')}"
            + (f", {counted(files, 'file')}" if files else "")
            + f", expected ~{plan.expected[k - 1]:.1f}s"
        )
        width = max((len(s.name) for s in part), default=0)
        for s, expected in zip(part, seconds, strict=True):
            shown = f"~{expected:.1f}s" if expected is not None else "?"
            out.append(f"  {s.name:<{width}}  {shown:>7}  {_what(s)}")
    if plan.reused:
        names = ", ".join(sorted(p.shard for p in plan.reused))
        out.append(f"reused, in no partition: {counted(len(plan.reused), 'shard')} ({names})")
    each = ", ".join(f"{k} ~{e:.1f}s" for k, e in enumerate(plan.expected, 1))
    out.append(f"partitions: {each}; expected makespan ~{max(plan.expected):.1f}s")
    return out
