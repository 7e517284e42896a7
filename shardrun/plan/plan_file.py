"""The plan file, image.plan.json: written by the build job (`build --output FILE
--partitions N`), read by every partition job, often on another machine and through a
CI artifact that anyone with push rights can replace.

So the file is trusted for the assignment only: which shard names each partition runs,
which files each `split` group gets, and the seconds expected of them. What a shard runs
and with which options comes from the job's own shards.toml (plan/assign.py); options a
file carries (older shardrun wrote them) are not read. The file itself is read as any
foreign file (state/foreign.py): a regular file, bounded in size and depth, every value
checked before use, every fault one line and exit 2.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard
from shardrun.plan.timings import MAX_SECONDS
from shardrun.state import foreign, results_record
from shardrun.state.files import write_atomic
from shardrun.state.results_record import Passed
from shardrun.state.shard_record import is_name

SCHEMA = "https://shardrun.dev/schemas/plan-1.json"
# A matrix of more jobs than this is a slip (a missing digit is cheap on the command
# line, 10,000 CI machines are not); GitHub caps a matrix at 256.
MAX_PARTITIONS = 1024
# A config makes at most 1,000 shards a [[shard]], and a per-slot split a group a slot.
MAX_SHARDS = 100_000
# A plan is names and file paths: 1,024 partitions, or a split of 20,000 files at about
# 100 bytes each, come to 2-3 MB; the reused shards' test cases (about 60 bytes each)
# add 6 MB for 100,000 of them. 32 MB leaves room and parses in about 0.3 s.
PLAN_MAX = 32_000_000
# top object > partitions > partition > shard > files: 5; older plans' options add 2.
_DEPTH = 8
_ID_MAX = 200  # characters of an image ID or a config digest ("sha256:" + 64 hex)
REWRITE = "write it again with `shardrun build --output FILE --partitions N`"


@dataclass(frozen=True)
class Plan:
    image_id: str
    config: str  # the digest of the config file it was made from
    # The shards of partition 1, 2, ... N. Read from a file: names and files only, until
    # assign.py gives them the config's options.
    partitions: tuple[tuple[Shard, ...], ...]
    expected: tuple[float, ...]  # seconds each partition is expected to take
    # The seconds each shard of each partition is expected to take, as the build job's
    # timings said (`list --partition` shows them; a job's own timings may differ).
    seconds: tuple[tuple[float, ...], ...] = ()
    # Shards not in any partition: they passed before on this image's content (issue 27).
    # The merge reports them passed from that run, with their test cases.
    reused: tuple[Passed, ...] = ()

    @property
    def total(self) -> int:
        return len(self.partitions)

    @property
    def digest(self) -> str:
        """What a partition's report names, so a merge can tell plans apart."""
        names: list = [[s.name for s in part] for part in self.partitions]
        if self.reused:  # a plan without any keeps the digest it always had
            names.append(sorted(p.shard for p in self.reused))
        return hashlib.sha256(json.dumps([self.image_id, self.config, names]).encode()).hexdigest()


def save(plan: Plan, path: Path) -> None:
    data = {
        "schema": SCHEMA,
        "image_id": plan.image_id,
        "config": plan.config,
        "digest": plan.digest,
        "expected": list(plan.expected),
        "seconds": [list(each) for each in plan.seconds],
        "partitions": [
            [{"name": s.name, "files": list(s.files)} for s in part] for part in plan.partitions
        ],
        "reused": [results_record.entry_json(p) for p in plan.reused],
    }
    write_atomic(path, json.dumps(data, indent=1))


def load(path: Path) -> Plan:
    """The plan in `path`; ConfigError (one line, naming the file and the fix) if the file
    is none, or is not a regular file, or holds anything a plan cannot."""
    try:
        data = foreign.read_json(path, PLAN_MAX, depth=_DEPTH)
        return _plan(data)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such plan; write one with `shardrun build --output "
            "FILE --partitions N`, or give it with --plan PATH"
        ) from None
    except foreign.Refused as exc:
        raise ConfigError(f"{path} cannot be read as a plan ({exc}); {REWRITE}") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read as a plan ({exc.strerror}); {REWRITE}") from None


def _plan(data: Any) -> Plan:
    """The plan `data` holds; Refused (a phrase) at its first fault."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise foreign.Refused("not a shardrun plan")
    image_id, config = data.get("image_id"), data.get("config")
    if not (_is_id(image_id) and _is_id(config)):
        raise foreign.Refused("its image_id or config is not a digest")
    parts = data.get("partitions")
    if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_PARTITIONS:
        raise foreign.Refused(f"partitions is not a list of 1 to {MAX_PARTITIONS} partitions")
    if sum(len(_list(part)) for part in parts) > MAX_SHARDS:
        raise foreign.Refused(f"more than {MAX_SHARDS} shards")
    partitions = tuple(tuple(_shard(entry) for entry in part) for part in parts)
    names = [s.name for part in partitions for s in part]
    if len(set(names)) != len(names):
        raise foreign.Refused("a shard is in it twice")
    expected = _seconds(data.get("expected"), "expected")
    if len(expected) != len(partitions):
        raise foreign.Refused("its partitions do not add up: not one expected time each")
    seconds = tuple(_seconds(each, "seconds") for each in _list(data.get("seconds") or []))
    if seconds and [len(s) for s in seconds] != [len(p) for p in partitions]:
        raise foreign.Refused("its partitions do not add up: not one time for each shard")
    reused = tuple(_reused(entry) for entry in _list(data.get("reused") or []))
    if len({p.shard for p in reused} | set(names)) != len(reused) + len(names):
        raise foreign.Refused("a shard is in it twice")
    return Plan(image_id, config, partitions, expected, seconds, reused)


def _reused(entry: Any) -> Passed:
    try:
        return results_record.entry_from_json(entry)
    except foreign.Refused as exc:
        raise foreign.Refused(f"reused: {exc}") from None


def _shard(entry: Any) -> Shard:
    """A partition's shard: its name and its files; anything else it holds is not read."""
    if not isinstance(entry, dict) or not is_name(entry.get("name")):
        raise foreign.Refused(f"{_show(entry)} is not a shard of a plan")
    files = tuple(str(foreign.relative_name(f)) for f in _list(entry.get("files") or []))
    return Shard(name=entry["name"], files=files)


def _seconds(value: Any, key: str) -> tuple[float, ...]:
    found = tuple(foreign.number(v, 0, MAX_SECONDS) for v in _list(value))
    if any(s is None for s in found):
        bad = next(v for v, s in zip(value, found, strict=True) if s is None)
        raise foreign.Refused(f"{key} holds {_show(bad)}, not seconds from 0 to {MAX_SECONDS:g}")
    return tuple(s for s in found if s is not None)


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise foreign.Refused(f"{_show(value)} where a list belongs")
    return value


def _is_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= _ID_MAX and value.isprintable()


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
