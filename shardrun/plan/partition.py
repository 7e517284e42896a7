"""A plan for a CI matrix, made once by the build job: which shards (and which files of a
`split`) each of N partition jobs runs, balanced by recorded times.

Every job must run the same partition of the same suite, even when their timings files
differ or the suite changed after the build, so no job plans for itself: each reads the
plan the build job wrote beside the image file (plan_file.py), refuses one made for
another image or config, and runs its share as its own config makes each shard
(assign.py). Pure but for reading and writing the plan file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from shardrun.config.spec import Config
from shardrun.model.errors import ConfigError
from shardrun.model.matrix import CI_VARIABLES, INDEX_NAMES
from shardrun.model.shard import Shard
from shardrun.model.transit import IMAGE_FILE_SUFFIXES
from shardrun.plan import affinity, assign, plan_file, timings
from shardrun.plan.affinity import NO_SETUP, Setup
from shardrun.plan.make import planned
from shardrun.plan.plan_file import MAX_PARTITIONS, REWRITE, Plan
from shardrun.state.results_record import Passed

# The plan file is read and written in plan_file.py; build and list know it from here.
load, save = plan_file.load, plan_file.save


def config_digest(config: Config) -> str:
    return "sha256:" + hashlib.sha256(config.path.read_bytes()).hexdigest()


def expected_seconds(
    shard: Shard,
    durations: Mapping[str, float],
    file_times: Mapping[str, float],
    setup: Setup = NO_SETUP,
) -> float:
    """A shard's expected seconds: for a split group its files' and its setup's, else its
    recorded time, else the mean of the recorded ones (1 s when none is)."""
    if shard.files:
        return affinity.seconds(shard.files, file_times, setup)
    if shard.name in durations:
        return durations[shard.name]
    return sum(durations.values()) / len(durations) if durations else 1.0


def expected_on_slots(shards: Sequence[Shard], path: Path) -> tuple[float, ...]:
    """Each shard's expected seconds on a slot (its run and the slot's gap per shard) from
    the times recorded in `path` (timings.json), in `shards`' order: what the live view
    reckons the run's expected end from. () when no time is recorded yet."""
    durations, file_times = timings.load(path), timings.load_files(path)
    if not durations and not file_times:
        return ()
    setup, gap = timings.load_setup(path), timings.load_gap(path)
    return tuple(round(expected_seconds(s, durations, file_times, setup) + gap, 3) for s in shards)


def make_for(
    config: Config,
    total: int,
    image_id: str,
    files: Sequence[str] | None = None,
    reusable: Callable[[Sequence[Shard]], Mapping[str, Passed]] = lambda shards: {},
) -> Plan:
    """The matrix's plan for `config`'s shards over `total` jobs, from the recorded times:
    what `build --partitions` writes beside the image file. `reusable` says which shards
    passed before on this image's content: they go in no partition, and the plan lists
    them as reused."""
    # A count = "slots" split makes N times this machine's CPUs of groups: the jobs of
    # hosted CI are machines alike.
    shards = planned(config, None, total * (os.cpu_count() or 1), files)
    reused = reusable(shards)
    shards = [s for s in shards if s.name not in reused]
    path = config.timings_path
    plan = make(
        shards,
        total,
        timings.load(path),
        timings.load_files(path),
        image_id,
        config_digest(config),
        timings.load_gap(path),
        timings.load_setup(path),
    )
    # By this plan's names: shards of identical work share one key, and one entry.
    return replace(plan, reused=tuple(replace(p, shard=name) for name, p in reused.items()))


def make(
    shards: Sequence[Shard],
    total: int,
    durations: Mapping[str, float],
    file_times: Mapping[str, float],
    image_id: str,
    config: str,
    gap: float = 0.0,
    setup: Setup = NO_SETUP,
) -> Plan:
    """LPT: longest first, each onto the partition with the least expected time (ties by
    index, shards in name order): deterministic, and with at least `total` shards none is
    left empty. `gap`: the seconds a slot spends per shard besides its run (timings'
    load_gap), so a partition of many short shards is not taken for a short one."""
    if not 1 <= total <= MAX_PARTITIONS:
        raise ConfigError(
            f"--partitions {total}: give a number of partition jobs from 1 to {MAX_PARTITIONS}"
        )
    times = {s.name: expected_seconds(s, durations, file_times, setup) + gap for s in shards}
    heap = [(0.0, index) for index in range(total)]
    parts: list[list[Shard]] = [[] for _ in range(total)]
    for shard in sorted(shards, key=lambda s: (-times[s.name], s.name)):
        load, index = heapq.heappop(heap)
        parts[index].append(shard)
        heapq.heappush(heap, (load + times[shard.name], index))
    _improve(parts, times)
    expected = [sum(times[s.name] for s in part) for part in parts]
    ordered = [tuple(sorted(part, key=lambda s: -times[s.name])) for part in parts]
    seconds = tuple(tuple(round(times[s.name], 3) for s in part) for part in ordered)
    return Plan(image_id, config, tuple(ordered), tuple(round(e, 3) for e in expected), seconds)


# Each pass looks at every pair of shards between the last partition and another: enough
# for a matrix's tens to hundreds of shards, bounded for more.
_IMPROVE_PASSES = 50


def _improve(parts: list[list[Shard]], times: Mapping[str, float]) -> None:
    """Moves and swaps out of the partition expected to end last, while one makes it end
    sooner without another ending as late. LPT alone can end 4/3 as late as the best
    (3 3 2 2 2 over two: 7 against 6); this closes most of that. Deterministic: the
    best change first, ties by partition and shard name."""
    loads = [sum(times[s.name] for s in part) for part in parts]
    for _ in range(_IMPROVE_PASSES):
        worst = max(range(len(parts)), key=lambda k: (loads[k], -k))
        best: tuple[float, int, str, str] | None = None
        for other in range(len(parts)):
            if other == worst:
                continue
            for s in parts[worst]:
                t = times[s.name]
                for u in (None, *parts[other]):
                    moved = t - (times[u.name] if u is not None else 0.0)
                    if moved <= 0:
                        continue
                    after = max(loads[worst] - moved, loads[other] + moved)
                    if after < loads[worst] - 1e-9:
                        key = (after, other, s.name, u.name if u is not None else "")
                        best = key if best is None or key < best else best
        if best is None:
            return
        _, other, name, swap = best
        s = next(x for x in parts[worst] if x.name == name)
        parts[worst].remove(s)
        parts[other].append(s)
        moved = times[s.name]
        if swap:
            u = next(x for x in parts[other] if x.name == swap)
            parts[other].remove(u)
            parts[worst].append(u)
            moved -= times[u.name]
        loads[worst] -= moved
        loads[other] += moved


def beside(image: Path) -> Path:
    """Where `build --output image.tar.zst --partitions N` writes the plan: image.plan.json."""
    name = image.name
    for suffix in IMAGE_FILE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return image.with_name(name[: -len(suffix)] + ".plan.json")
    return image.with_name(name + ".plan.json")


def parse_partition(text: str | None, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """`--partition K/N` (K from 1 to N), or the CI's own variables when it is not given."""
    where = f'--partition "{text}"'
    if text is None:
        for index_var, total_var, zero_based in CI_VARIABLES:
            if index_var in environ and total_var in environ:
                where = f"{index_var}={environ[index_var]}, {total_var}={environ[total_var]}"
                index = environ[index_var]
                text = (
                    f"{int(index) + zero_based}/{environ[total_var]}"
                    if _NUMBER.fullmatch(index)
                    else "?"
                )
                break
        else:
            raise ConfigError(
                "--partition K/N is missing and no CI variable gives it "
                f"({INDEX_NAMES}); "
                "give it, e.g. --partition 2/4"
            )
    index, slash, total = text.partition("/")
    numbers = slash and _NUMBER.fullmatch(index) and _NUMBER.fullmatch(total)
    if not (numbers and 1 <= int(index) <= int(total) <= MAX_PARTITIONS):
        raise ConfigError(
            f"{where}: not a partition K/N with K from 1 to N, N at most {MAX_PARTITIONS}; "
            "write e.g. 2/4"
        )
    return int(index), int(total)


# ASCII digits, few enough for int() ("²".isdigit() is true; 5,000 digits are refused).
_NUMBER = re.compile(r"[0-9]{1,6}")


def check(plan: Plan, total: int, config: str, where: Path) -> None:
    """Refuse a plan made for another matrix or config (one line, exit 2). Its image is
    known only once the image file is read or the image found: `check_image`."""
    if total != plan.total:
        raise ConfigError(
            f"{where} is a plan for {plan.total} partitions, not {total}; "
            "give the plan of this matrix"
        )
    if config != plan.config:
        raise ConfigError(
            f"{where} was made from another shards.toml than this one; give "
            "the plan the build job wrote for this commit"
        )


def check_image(planned: str, image_id: str, given: str) -> None:
    """Refuse an image other than the one the plan was made for (one line, exit 2): the
    image file and the plan must come from one build job. `given`: the image, as the user
    gave it."""
    if image_id != planned:
        raise ConfigError(
            f"{given} is image {image_id[:19]}, but the plan was made for image "
            f"{planned[:19]}; give the image and the plan of one build job"
        )


@dataclass(frozen=True)
class JobShare:
    """What one job of a matrix runs, from the plan."""

    shards: tuple[Shard, ...]
    plan: Plan
    index: int
    path: Path

    @property
    def report_entry(self) -> dict[str, object]:
        return {"index": self.index, "total": self.plan.total, "plan": self.plan.digest}


def in_matrix(environ: Mapping[str, str] = os.environ) -> bool:
    """A CI variable gives this job's place in a matrix."""
    return any(i in environ and t in environ for i, t, _ in CI_VARIABLES)


def find_plan(image: Path | None, plan_path: Path | None, needed: bool) -> Path | None:
    """The plan given with --plan, else the one beside the image file (when there is one,
    or `needed`); ConfigError if it is `needed` and neither is given."""
    if plan_path is not None:
        return plan_path
    if image is not None and (needed or beside(image).exists()):
        return beside(image)
    if needed:
        raise ConfigError(
            "--partition needs the plan: give --image FILE (with the plan beside it) or --plan PATH"
        )
    return None


def for_job(
    config: Config,
    image: Path | None,
    plan_path: Path | None,
    text: str | None,
    environ: Mapping[str, str] = os.environ,
    files: Sequence[str] | None = None,
) -> JobShare | None:
    """This job's share of the plan, when it runs one partition: `--partition` or `--plan`
    given, or a CI variable set and a plan beside the image file. None: the whole suite."""
    path = find_plan(image, plan_path, needed=text is not None)
    if path is None or (text is None and plan_path is None and not in_matrix(environ)):
        return None
    plan = load(path)
    index, total = parse_partition(text, environ)
    check(plan, total, config_digest(config), path)
    plan = for_config(plan, config, path, files)
    return JobShare(plan.partitions[index - 1], plan, index, path)


def for_config(plan: Plan, config: Config, where: Path, files: Sequence[str] | None = None) -> Plan:
    """`plan` (checked to be made from `config`) with each shard as `config` makes it: the
    plan decides which shards and files a partition runs, never how (plan_file.py).
    `files`: the build context's files (image/context_files.py), when a shard splits."""
    try:
        shards = assign.from_config(config, [s for part in plan.partitions for s in part], files)
    except ValueError as exc:
        raise ConfigError(f"{where} does not fit shards.toml: {exc}; {REWRITE}") from None
    parts = tuple(tuple(shards[s.name] for s in part) for part in plan.partitions)
    return dataclasses.replace(plan, partitions=parts)
