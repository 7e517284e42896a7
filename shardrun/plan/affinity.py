"""Split groups that keep together what shares setup: whole directories (or the files a
`split-together` glob names) wherever the groups stay balanced. Pure.

A group pays a fixed cost (container, interpreter, collection: `Setup.base`) and, once
for each directory it touches, that directory's setup (the modules its tests import,
fixtures of wider scope, caches its first test fills: `Setup.per_dir`). Four groups that
each hold a quarter of a directory pay its setup four times; one group that holds it
whole pays it once. So, under a cap on any group's time, the directories that fit in a
group are placed whole, largest first, each into the group expected to end first; then
the ones larger than a group should be are cut to fill the room left, the groups with
the most room first, so into as few parts as the cap allows. The cap starts at the lower
bound (everything shared out, each directory's setup counted once) and rises 1% at a
time until everything fits; past 8% above the bound any directory may be cut, so the
groups stay balanced. Ties go by name and group number, so the same times give the same
groups on every machine.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from shardrun.plan import split

_CAP_STEPS = 400  # 1% each: 53x the lower bound, far more than any real suite needs
_WHOLE_WITHIN = 1.08  # how far above the bound a cap may rise to keep small ones whole


@dataclass(frozen=True)
class Setup:
    """Seconds a group pays besides its files' own: once, and once per directory."""

    base: float = 0.0
    per_dir: float = 0.0


NO_SETUP = Setup()


def unit_of(path: str, together: Sequence[str] = ()) -> str:
    """What `path` goes with: the first `split-together` glob that matches it, else its
    directory."""
    for glob in together:
        if split.match([path], glob):
            return glob
    return posixpath.dirname(path)


def units(files: Sequence[str], together: Sequence[str] = ()) -> dict[str, list[str]]:
    """The files of each unit, units and files in name order."""
    out: dict[str, list[str]] = {}
    for path in sorted(files):
        out.setdefault(unit_of(path, together), []).append(path)
    return dict(sorted(out.items()))


def seconds(
    files: Sequence[str],
    known: Mapping[str, float],
    setup: Setup = NO_SETUP,
    together: Sequence[str] = (),
) -> float:
    """A group's expected seconds: its files' own, its fixed cost, and the setup of every
    directory it touches."""
    own = sum(split.estimates(files, known).values())
    return setup.base + setup.per_dir * len(units(files, together)) + own


def groups(
    files: Sequence[str],
    count: int,
    known: Mapping[str, float],
    setup: Setup = NO_SETUP,
    together: Sequence[str] = (),
) -> list[list[str]]:
    """`files` in `count` groups, whole directories where balance allows; each group in
    name order. ValueError if there are fewer files than groups."""
    if count < 1 or len(files) < count:
        raise ValueError(f"{len(files)} files cannot make {count} groups")
    times = split.estimates(files, known)
    by_unit = units(files, together)
    cost = {u: setup.per_dir + sum(times[f] for f in fs) for u, fs in by_unit.items()}
    whole = {u for u in by_unit if u in together}  # "always together": never cut
    # No group can end before the total is shared out, nor before its longest file or
    # its largest uncuttable unit.
    cap = max(
        sum(cost.values()) / count,
        max(setup.per_dir + times[f] for f in files),
        max((cost[u] for u in whole), default=0.0),
    )
    bound = cap
    big = {u for u in by_unit if cost[u] > bound and u not in whole}
    for _ in range(_CAP_STEPS):
        # Only a directory larger than a group should be is cut, while balance holds
        # within _WHOLE_WITHIN; past that, any may be, so the groups stay balanced.
        keep = whole if cap > bound * _WHOLE_WITHIN else set(by_unit) - big
        placed = _pack(by_unit, cost, times, count, cap, setup.per_dir, keep)
        if placed is not None:
            _fill_empty(placed, times)
            return [sorted(group) for group in placed]
        cap *= 1.01
    return split.groups(files, count, known)  # unreachable for sane times; still a split


def _pack(
    by_unit: Mapping[str, list[str]],
    cost: Mapping[str, float],
    times: Mapping[str, float],
    count: int,
    cap: float,
    per_dir: float,
    whole: AbstractSet[str],
) -> list[list[str]] | None:
    """Every unit whole into the group with the least time that has room for it, else cut
    over the groups with the most room; None if something fits nowhere under `cap`."""
    loads = [0.0] * count
    placed: list[list[str]] = [[] for _ in range(count)]
    slack = cap * 1e-9
    # Whole ones first, largest first; the ones that may be cut then fill the room left.
    for unit in sorted(by_unit, key=lambda u: (u not in whole, -cost[u], u)):
        room = [g for g in range(count) if loads[g] + cost[unit] <= cap + slack]
        if room:
            g = min(room, key=lambda i: (loads[i], i))
            placed[g] += by_unit[unit]
            loads[g] += cost[unit]
            continue
        if unit in whole:
            return None
        left = sorted(by_unit[unit], key=lambda f: (-times[f], f))
        while left:
            g = min(range(count), key=lambda i: (loads[i], i))  # the most room
            if loads[g] + per_dir + times[left[0]] > cap + slack:
                return None
            loads[g] += per_dir  # each part of a cut directory pays its setup
            rest = []
            for f in left:
                if loads[g] + times[f] <= cap + slack:
                    placed[g].append(f)
                    loads[g] += times[f]
                else:
                    rest.append(f)
            left = rest
    return placed


def _fill_empty(placed: list[list[str]], times: Mapping[str, float]) -> None:
    """A group left empty (fewer units than groups, and all fitted whole) takes the
    shortest file of the group with the most files: every group must run something."""
    for empty in [g for g, group in enumerate(placed) if not group]:
        donor = max(range(len(placed)), key=lambda g: (len(placed[g]), -g))
        shortest = min(placed[donor], key=lambda f: (times[f], f))
        placed[donor].remove(shortest)
        placed[empty].append(shortest)


def sizes(files: Sequence[str], together: Sequence[str] = ()) -> dict[str, int]:
    """How many files each unit has: what `describe` compares a group's share with."""
    return {unit: len(mine) for unit, mine in units(files, together).items()}


def describe(
    files: Sequence[str], whole_sizes: Mapping[str, int], together: Sequence[str] = ()
) -> str:
    """A group's units for `shardrun list`: `tests/db/ (whole, 5)`, `tests/api/ (3 of 9)`;
    `whole_sizes`: `sizes` of all the split's files."""
    parts = []
    for unit, mine in units(files, together).items():
        name = unit if unit in together else (unit or ".") + "/"
        whole = whole_sizes.get(unit, len(mine))
        shown = f"whole, {len(mine)}" if len(mine) == whole else f"{len(mine)} of {whole}"
        parts.append(f"{name} ({shown})")
    return ", ".join(parts)
