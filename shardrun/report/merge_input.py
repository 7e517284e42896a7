"""The partition run folders `shardrun merge` is given: found, and each report.json read
and checked before anything of it is used.

They are CI artifacts made on other machines, and the merge job often holds more rights
than the jobs that made them, so each is untrusted: a report is a regular file of
bounded size and depth inside its own folder (never reached through a link), checked
field by field (merge_report.py), and what does not hold is one line naming the file and
the key (exit 4, as a lost job is). The paths a report names are not trusted either:
merge.py resolves them inside the partition's own copied folder, or leaves them out.

With the build's plan (`merge --plan`, given here as `Planned`), the plan says what the
matrix was: every report must name it, each partition must report exactly the shards the
plan gave it, and a partition it gave none need not report at all (GitHub skips a
job the matrix leaves out, and downloads no folder when no job uploaded one).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.model.errors import InfraError
from shardrun.report.merge_report import MAX_PARTITIONS, MAX_SHARDS, MAX_WORKERS, Bad, checked
from shardrun.state import foreign, layout
from shardrun.state.foreign import Refused

REPORT_MAX = 32 * 1024 * 1024  # bytes of one report.json: as a JUnit file (junit_intake)
REPORTS_MAX = 1024 * 1024 * 1024  # bytes of all the reports of one merge
_WALK_MAX = 100_000  # entries looked at while searching the inputs for reports
_FIX = "not a report shardrun wrote; download the partition's run folder again"


@dataclass(frozen=True)
class Partition:
    index: int
    total: int
    plan: str
    folder: Path  # the downloaded run folder, holding its report.json
    # The report, checked: only the keys the merge reads, each of its type and range, every
    # text cut to length; each shard's "options" a Shard or None (see shard_record).
    report: dict[str, Any]
    dropped: int = 0  # shards whose recorded options could not be read


@dataclass(frozen=True)
class Planned:
    """What the build's plan says the matrix was: the digest each report must name, and
    the shard names of partition 1, 2, ... N."""

    source: str  # the plan file, as the user named it
    digest: str
    partitions: tuple[frozenset[str], ...]

    @property
    def total(self) -> int:
        return len(self.partitions)

    @property
    def idle(self) -> bool:
        """No partition has a shard: no partition job ran."""
        return not any(self.partitions)


def find(inputs: Sequence[str], missing_ok: bool = False) -> list[Path]:
    """The report.json files of the inputs: files, folders (searched below, but not
    inside a run folder, nor through a link) or globs. `missing_ok`: an input that is
    not there holds none (no job ran, so none uploaded a folder)."""
    found: list[Path] = []
    for text in inputs:
        paths = [Path(p) for p in sorted(glob.glob(text))] or [Path(text)]
        for path in paths:
            if path.is_dir():
                found += _search(path)
            elif os.path.lexists(path):
                found.append(path)
            elif not missing_ok:
                raise InfraError(
                    f"{path}: no such file or folder; give the partition jobs' "
                    "run folders or report.json files"
                )
    # The folder is the user's to name, but never the file: a report.json that is a link
    # (to a run elsewhere on this disk) is refused when it is read.
    return list(dict.fromkeys(p.parent.resolve() / p.name for p in found))


def _search(top: Path) -> list[Path]:
    """Every report.json below `top`. A folder holding one is a run folder: nothing below
    it is a report (a shard's artifact may be called report.json). Links are not
    followed (an artifact upload that followed runs/latest made a real copy instead)."""
    found, stack, seen = [], [top], 0
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            raise InfraError(
                f"{folder}: cannot be read ({exc.strerror}); give readable folders"
            ) from None
        seen += len(listed)
        if seen > _WALK_MAX:
            raise InfraError(
                f"{top}: over {_WALK_MAX} files and folders searched for report.json; "
                "give the partition jobs' run folders"
            )
        if any(e.name == layout.REPORT_JSON for e in listed):
            found.append(Path(folder) / layout.REPORT_JSON)
            continue
        stack += reversed([Path(e.path) for e in listed if e.is_dir(follow_symlinks=False)])
    return found


def read(reports: Sequence[Path], planned: Planned | None = None) -> list[Partition]:
    """Every partition once, of one plan (`planned`'s, if given: then only those it gave
    shards must be there, each with exactly those); InfraError naming what is wrong."""
    if len(reports) > 2 * MAX_PARTITIONS:
        raise InfraError(
            f"{len(reports)} reports found, more than the {MAX_PARTITIONS} partitions "
            "a merge takes (each at most twice); give the partition jobs' run folders"
        )
    partitions: dict[int, Partition] = {}
    plans: set[tuple[str, int]] = set()
    budget = REPORTS_MAX
    for path in reports:
        part, size = _read_one(path, min(REPORT_MAX, budget))
        budget -= size
        plans.add((part.plan, part.total))
        if planned is not None and (part.plan, part.total) != (planned.digest, planned.total):
            raise InfraError(
                f"{path}: partition {part.index} is of another plan than {planned.source}; "
                "merge the jobs of the build that wrote that plan"
            )
        if len(plans) > 1:
            raise InfraError(
                f"{path}: partition {part.index} is of another plan than the "
                "others; merge the jobs of one build"
            )
        if part.index in partitions:
            if partitions[part.index].report["run_id"] == part.report["run_id"]:
                # The same run found twice: an artifact upload that followed its `latest`
                # link keeps a second copy of the folder. A second *run* is an error.
                continue
            raise InfraError(
                f"partition {part.index}/{part.total} reported twice: "
                f"{partitions[part.index].folder} and {part.folder}"
            )
        partitions[part.index] = part
    if planned is not None:
        total = planned.total
        wanted = [k for k in range(1, total + 1) if planned.partitions[k - 1]]
    elif partitions:
        total = next(iter(plans))[1]
        wanted = list(range(1, total + 1))
    else:
        raise InfraError("no partition reports found; give the jobs' run folders")
    missing = [str(k) for k in wanted if k not in partitions]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InfraError(
            f"partition {', '.join(missing[:10])}{more} of {total} never reported; its job "
            "failed before it wrote a report, or its folder was not downloaded"
        )
    _check_totals(partitions)
    if planned is not None:
        _check_shares(partitions, planned)
    return [partitions[k] for k in sorted(partitions)]


def _check_shares(partitions: dict[int, Partition], planned: Planned) -> None:
    """Each partition reported exactly the shards the plan gave it: one it left out would
    be missing from the merged run without a word, one it was not given (a shard the
    plan reused, say) would stand beside the plan's own result of it."""
    for k in sorted(partitions):
        names = {entry["name"] for entry in partitions[k].report["shards"]}
        share = planned.partitions[k - 1]
        if extra := sorted(names - share):
            raise InfraError(
                f'partition {k} reported shard "{extra[0]}", which {planned.source} does not '
                "give it; merge the jobs of the build that wrote that plan"
            )
        if lacking := sorted(share - names):
            raise InfraError(
                f'partition {k} did not report shard "{lacking[0]}", which {planned.source} '
                "gives it; its report is not the whole of its job's run: run that job again"
            )


def _check_totals(partitions: dict[int, Partition]) -> None:
    seen: dict[str, int] = {}
    for part in partitions.values():
        for entry in part.report["shards"]:
            if entry["name"] in seen:
                raise InfraError(
                    f'shard "{entry["name"]}" ran in partitions '
                    f"{seen[entry['name']]} and {part.index}"
                )
            seen[entry["name"]] = part.index
    for what, count, most in (
        ("shards", len(seen), MAX_SHARDS),
        ("workers", sum(len(p.report["workers"]) for p in partitions.values()), MAX_WORKERS),
    ):
        if count > most:
            raise InfraError(
                f"the partitions' reports hold {count} {what}, over the {most} a merge "
                "takes; give the partition jobs of one build"
            )


def _read_one(path: Path, limit: int) -> tuple[Partition, int]:
    """The partition `path` reports, and its size in bytes."""
    try:
        text = foreign.read_bytes(path, limit, within=path.parent)
        data = foreign.parse_json(text)
    except FileNotFoundError:
        raise InfraError(f"{path}: no such file; give the partition jobs' run folders") from None
    except Refused as exc:
        raise InfraError(f"{path} cannot be read: {exc}; {_FIX}") from None
    except OSError as exc:  # a read that fails midway (EIO): a damaged download
        raise InfraError(f"{path} cannot be read: {exc.strerror}; {_FIX}") from None
    try:
        report, dropped = checked(data)
    except Bad as exc:
        raise InfraError(f"{path}: {exc}; {_FIX}") from None
    place = report["partition"]
    part = Partition(place["index"], place["total"], place["plan"], path.parent, report, dropped)
    return part, len(text)
