"""`shardrun merge`: the partition jobs of a CI matrix, as downloaded artifacts, made into
one run: one summary, one junit.xml, one report.json, one exit code, merged timings.

A job that never reported, a partition reported twice, a shard that ran in two
partitions or a report of another plan fails the merge with the partition named (exit
4): a silently lost job must not turn the matrix green. The partitions' folders are
untrusted (merge_input.py reads them, merge_copy.py copies them), and the paths their
reports name are resolved only inside each partition's own copy: one that leaves it
(an absolute path, a `..`, a link) is left out with a line saying so, since the verdict
stands on the shards' statuses and nothing of the host is read.

With the build's plan (`merge --plan`), the shards it reused (they passed before on the
image's content, and no partition ran them) join the merged run as the caller settled
them, their files under REUSED/; with no partition to merge, the run is theirs alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from shardrun.model.errors import EXIT_FAILED, EXIT_OK, ConfigError, InfraError
from shardrun.model.results import ShardResult, Status
from shardrun.model.shard import Shard
from shardrun.model.text import counted, one_line
from shardrun.report.merge_copy import Budget, CopyFailed, Folder, TakeJunit, copy, scan
from shardrun.report.merge_input import Partition, Planned, find, read
from shardrun.report.summary import RunSummary, WorkerReport
from shardrun.state import layout
from shardrun.state.foreign import Refused, relative_name

__all__ = ["REUSED", "Merged", "Partition", "Planned", "check_apart", "find", "merge", "read"]

# The merged run's folder for the plan's reused shards' logs and JUnit files, beside the
# partition-K/ folders: no shard name can reach out of it, nor into a partition's.
REUSED = "reused"


@dataclass(frozen=True)
class Merged:
    summary: RunSummary
    notes: tuple[str, ...]  # what was left out, a line each, for stderr


@dataclass
class _Names:
    """Where a partition's shards keep their files, as paths inside its folder."""

    files: dict[tuple[str, str], PurePosixPath]  # (shard, "log" | "junit") -> its file
    artifacts: dict[str, list[PurePosixPath]]
    junit: set[PurePosixPath]  # every attempt's JUnit file: read through the intake
    outside: list[str]  # 'shard "a": log "/etc/shadow"', for the note


def merge(
    partitions: Sequence[Partition],
    run_id: str,
    run_dir: Path,
    take_junit: TakeJunit,
    budget: Budget | None = None,
    *,
    reused: Sequence[ShardResult] = (),
    image_id: str | None = None,
    project: str = "",
) -> Merged:
    """One summary of all partitions; each partition's files copied into
    `run_dir`/partition-K/ (`take_junit`: the run's JUnit intake; `budget`: what may be
    copied, COPY_MAX and COPY_FILES unless given), and the paths its report names
    pointing there. `reused`: the plan's reused shards, after the partitions' results;
    `image_id`: the plan's image (default: the first partition's); `project`: the name
    when no partition reported one."""
    budget = budget or Budget()
    folders = [scan(p.folder, budget) for p in partitions]
    names = [_names(p) for p in partitions]
    try:
        for part, folder, named in zip(partitions, folders, names, strict=True):
            wanted = sorted({*named.files.values(), *named.junit})
            copy(folder, _moved(run_dir, part), wanted, budget, named.junit, take_junit)
        for part, folder, named in zip(partitions, folders, names, strict=True):
            # A JUnit file the intake did not keep is not copied raw: junit.py would parse it.
            rest = sorted(set(folder.files) - named.junit)
            copy(folder, _moved(run_dir, part), rest, budget, set(), take_junit)
    except CopyFailed as exc:
        raise InfraError(f"{exc}; free some space or give another --output") from None
    results: list[ShardResult] = []
    shards: list[Shard] = []
    workers: list[WorkerReport] = []
    errors: list[str] = []
    notes: list[str] = []
    for part, folder, named in zip(partitions, folders, names, strict=True):
        for entry in part.report["shards"]:
            results.append(_result(entry, part, folder, named, _moved(run_dir, part)))
            if entry["options"] is not None:
                shards.append(entry["options"])
        for w in part.report["workers"]:
            workers.append(WorkerReport(**{**w, "name": f"{part.index}:{w['name']}"}))
        code = part.report["exit_code"]
        if code not in (EXIT_OK, EXIT_FAILED, None):
            errors.append(f"partition {part.index} exited {code}")
        notes += _notes(part, folder, named)
    if budget_note := budget.note():
        notes.append(budget_note)
    reports = [p.report for p in partitions]
    now = time.time()  # a merge of reused shards alone ran nothing: it starts and ends now
    summary = RunSummary(
        run_id=run_id,
        project=(reports[0]["project"] or "") if reports else project,
        image_id=image_id or (reports[0]["image_id"] if reports else None),
        started=min((r["started"] for r in reports), default=now),
        finished=max((r["finished"] for r in reports), default=now),
        results=(*results, *reused),
        interrupted=False,
        workers=tuple(workers),
        error="; ".join(errors),
        shards=tuple(shards),
        partitions=tuple(_partition_entry(p) for p in partitions),
    )
    return Merged(summary, tuple(notes))


def check_apart(run_dir: Path, folders: Sequence[Path], given: bool) -> None:
    """The merged run is written apart from what it reads: inside a partition's folder
    it would be copied into itself, or taken for a partition by the next merge.
    `given`: `run_dir` is the user's --output."""
    out = run_dir.resolve()
    for folder in folders:
        inner = folder.resolve()
        if out == inner or inner in out.parents or out in inner.parents:
            where = "--output" if given else "the merged run's folder"
            raise ConfigError(
                f"{where} {run_dir} {'holds' if out in inner.parents else 'lies in'} the "
                f"partition folder {folder}; write the merged run apart from its inputs"
                + ("" if given else " (give --output DIR)")
            )


def _moved(run_dir: Path, part: Partition) -> Path:
    return run_dir / f"partition-{part.index}"


def _partition_entry(p: Partition) -> dict[str, Any]:
    return {
        "index": p.index,
        "total": p.total,
        "run_id": p.report["run_id"],
        "exit_code": p.report["exit_code"],
        "folder": str(p.folder),
        # Which machine ran it and what it spent before its shards: a slow job's
        # load or a lost worker shows here, by partition.
        "machine": p.report["partition"]["machine"],
        "started": p.report["started"],
        "finished": p.report["finished"],
        "workers": [w["name"] for w in p.report["workers"]],
        "phases": p.report["phases"],
    }


def _names(part: Partition) -> _Names:
    """The files each shard's entry names, where a run writes them: <shard>[.<attempt>].log,
    <shard>[.<attempt>]/junit.xml and <shard>[.<attempt>]/artifacts/..., under the run's
    folder (recorded as the job's machine had it: /<run-id>/ marks where that begins).
    Any other path is outside: its file is not read."""
    found = _Names({}, {}, set(), [])
    marker = f"/{part.report['run_id']}/"
    for entry in part.report["shards"]:
        name, attempt = entry["name"], entry["attempt"]
        stem = layout.shard_stem(name, attempt)
        expected = {
            "log": PurePosixPath(f"{stem}.log"),
            "junit": PurePosixPath(stem, layout.SHARD_JUNIT),
        }
        for key, want in expected.items():
            rel = _within(entry[key], marker)
            if rel == want:
                found.files[(name, key)] = rel
            elif entry[key]:
                found.outside.append(f'shard "{name}": {key} {_shown(entry[key])}')
        if (name, "junit") in found.files:  # and the earlier attempts', as junit.py reads them
            found.junit.update(
                PurePosixPath(layout.shard_stem(name, k), layout.SHARD_JUNIT)
                for k in range(1, attempt + 1)
            )
        kept = found.artifacts.setdefault(name, [])
        for path in entry["artifacts"]:
            rel = _within(path, marker)
            if rel is not None and rel.parts[:2] == (stem, layout.ARTIFACTS) and len(rel.parts) > 2:
                kept.append(rel)
            else:
                found.outside.append(f'shard "{name}": artifact {_shown(path)}')
    return found


def _within(path: str | None, marker: str) -> PurePosixPath | None:
    """The part of `path` after the run's own folder, if it is a relative path that
    stays inside it (no `..`, not absolute); None otherwise."""
    if not path:
        return None
    _, sep, rest = path.partition(marker)
    try:
        return relative_name(rest, limit=1024) if sep else None
    except Refused:
        return None


def _notes(part: Partition, folder: Folder, named: _Names) -> list[str]:
    where = f"partition {part.index} ({part.folder})"
    notes = []
    links = [
        f'shard "{shard}": {key} is a link or no regular file'
        for (shard, key), rel in named.files.items()
        if rel not in folder.copied and folder.behind_link(rel)
    ]
    if outside := named.outside + links:
        more = f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""
        notes.append(f"{where}: not read, outside its folder or a link: {outside[0]}{more}")
    if skipped := folder.skipped():
        notes.append(f"{where}: not copied: {skipped} (only regular files are)")
    if part.dropped:
        notes.append(
            f"{where}: the recorded options of {counted(part.dropped, 'shard')} could not be read; "
            "`shardrun repro` cannot rerun them from the merged run"
        )
    return notes


def _result(
    entry: dict[str, Any], part: Partition, folder: Folder, named: _Names, moved: Path
) -> ShardResult:
    name = entry["name"]

    def here(rel: PurePosixPath | None) -> str | None:
        return str(moved / rel) if rel is not None and rel in folder.copied else None

    junit = named.files.get((name, "junit"))
    notes = [entry["artifacts_note"], folder.junit_notes.get(junit, "") if junit else ""]
    if entry["artifacts_cut"]:
        notes.append(f"{counted(entry['artifacts_cut'], 'more artifact')} not listed")
    return ShardResult(
        name=name,
        status=Status(entry["status"]),
        exit_code=entry["exit_code"],
        started=entry["started"],
        finished=entry["finished"],
        worker=f"{part.index}:{entry['worker']}" if entry["worker"] else None,
        slot=entry["slot"],
        log_path=here(named.files.get((name, "log"))),
        detail=entry["detail"],
        attempt=entry["attempt"],
        artifacts=tuple(p for rel in named.artifacts.get(name, ()) if (p := here(rel))),
        artifacts_note="; ".join(n for n in notes if n),
        junit=here(junit),
        image=entry["image"],
        reused_from=entry["reused_from"],
        reuse_key=entry["reuse_key"],
    )


def _shown(path: str) -> str:
    return one_line(repr(path if len(path) <= 80 else path[:77] + "..."))
