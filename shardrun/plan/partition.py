"""A plan for a CI matrix, made once by the build job: which shards (and which files of a
`split`) each of N partition jobs runs, balanced by recorded times.

Every job must run the same partition of the same suite, even when their timings files
differ or the suite changed after the build, so no job plans for itself: each reads the
plan the build job wrote beside the image file, and refuses one made for another image
or config. Pure but for reading and writing the plan file.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shardrun.config.spec import Config
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard, from_json, to_json
from shardrun.plan import affinity
from shardrun.plan.affinity import NO_SETUP, Setup
from shardrun.state.files import write_atomic

SCHEMA = "https://shardrun.dev/schemas/plan-1.json"
# The CI systems' own variables for a job's place in a parallel matrix: (index, total,
# whether the index counts from 0).
CI_VARIABLES = (
    ("CI_NODE_INDEX", "CI_NODE_TOTAL", False),  # GitLab `parallel: N`
    ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", True),
    ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", True),
)


@dataclass(frozen=True)
class Plan:
    image_id: str
    config: str  # the digest of the config file it was made from
    partitions: tuple[tuple[Shard, ...], ...]  # the shards of partition 1, 2, ... N
    expected: tuple[float, ...]  # seconds each partition is expected to take
    # The seconds each shard of each partition is expected to take, as the build job's
    # timings said (`list --partition` shows them; a job's own timings may differ).
    seconds: tuple[tuple[float, ...], ...] = ()

    @property
    def total(self) -> int:
        return len(self.partitions)

    @property
    def digest(self) -> str:
        """What a partition's report names, so a merge can tell plans apart."""
        names = [[s.name for s in part] for part in self.partitions]
        return hashlib.sha256(json.dumps([self.image_id, self.config, names]).encode()).hexdigest()


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
    if total < 1:
        raise ConfigError(f"--partitions {total}: give a number of partition jobs, 1 or more")
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


def save(plan: Plan, path: Path) -> None:
    data = {
        "schema": SCHEMA,
        "image_id": plan.image_id,
        "config": plan.config,
        "digest": plan.digest,
        "expected": list(plan.expected),
        "seconds": [list(each) for each in plan.seconds],
        "partitions": [[to_json(s) for s in part] for part in plan.partitions],
    }
    write_atomic(path, json.dumps(data, indent=1))


def load(path: Path) -> Plan:
    """The plan in `path`; ConfigError (one line, naming the file) if it is none."""
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != SCHEMA:
            raise ValueError("not a shardrun plan")
        parts = tuple(tuple(from_json(s) for s in part) for part in data["partitions"])
        plan = Plan(
            str(data["image_id"]),
            str(data["config"]),
            parts,
            tuple(float(e) for e in data["expected"]),
            tuple(tuple(float(e) for e in each) for each in data.get("seconds", ())),
        )
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such plan; write one with `shardrun build --output "
            "FILE --partitions N`, or give it with --plan PATH"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{path} cannot be read as a plan ({exc}); write it again with "
            "`shardrun build --output FILE --partitions N`"
        ) from None
    if (
        len(plan.expected) != plan.total
        or not plan.total
        or (plan.seconds and [len(p) for p in plan.seconds] != [len(p) for p in plan.partitions])
    ):
        raise ConfigError(f"{path} cannot be read as a plan (its partitions do not add up)")
    return plan


def beside(image: Path) -> Path:
    """Where `build --output image.tar.zst --partitions N` writes the plan: image.plan.json."""
    name = image.name
    for suffix in (".tar.zst", ".tar.gz", ".tgz", ".tar"):
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
                text = (
                    f"{int(environ[index_var]) + zero_based}/{environ[total_var]}"
                    if environ[index_var].isdigit()
                    else "?"
                )
                break
        else:
            raise ConfigError(
                "--partition K/N is missing and no CI variable gives it "
                "(CI_NODE_INDEX, BUILDKITE_PARALLEL_JOB, CIRCLE_NODE_INDEX); "
                "give it, e.g. --partition 2/4"
            )
    index, slash, total = text.partition("/")
    if not (slash and index.isdigit() and total.isdigit() and 1 <= int(index) <= int(total)):
        raise ConfigError(f"{where}: not a partition K/N with K from 1 to N; write e.g. 2/4")
    return int(index), int(total)


def check(plan: Plan, total: int, image_id: str | None, config: str, where: Path) -> None:
    """Refuse a plan made for another matrix, image or config (one line, exit 2)."""
    if total != plan.total:
        raise ConfigError(
            f"{where} is a plan for {plan.total} partitions, not {total}; "
            "give the plan of this matrix"
        )
    if image_id is not None and image_id != plan.image_id:
        raise ConfigError(
            f"{where} was made for image {plan.image_id[:19]}, not "
            f"{image_id[:19]}; give the plan the same build job wrote"
        )
    if config != plan.config:
        raise ConfigError(
            f"{where} was made from another shards.toml than this one; give "
            "the plan the build job wrote for this commit"
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
) -> JobShare | None:
    """This job's share of the plan, when it runs one partition: `--partition` or `--plan`
    given, or a CI variable set and a plan beside the image file. None: the whole suite."""
    path = find_plan(image, plan_path, needed=text is not None)
    if path is None or (text is None and plan_path is None and not in_matrix(environ)):
        return None
    plan = load(path)
    index, total = parse_partition(text, environ)
    check(plan, total, None, config_digest(config), path)
    return JobShare(plan.partitions[index - 1], plan, index, path)
