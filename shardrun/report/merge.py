"""`shardrun merge`: the partition jobs of a CI matrix, as downloaded artifacts, made into
one run: one summary, one junit.xml, one report.json, one exit code, merged timings.

A job that never reported, a partition reported twice, a shard that ran in two
partitions or a report of another plan fails the merge with the partition named (exit
4): a silently lost job must not turn the matrix green.
"""

from __future__ import annotations

import glob
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.model.errors import EXIT_FAILED, EXIT_OK, InfraError
from shardrun.model.results import ShardResult, Status
from shardrun.model.shard import Shard, from_json
from shardrun.report.history import read_report
from shardrun.report.summary import RunSummary, WorkerReport


@dataclass(frozen=True)
class Partition:
    index: int
    total: int
    plan: str
    folder: Path  # the downloaded run folder, holding its report.json
    report: dict[str, Any]


def find(inputs: Sequence[str]) -> list[Path]:
    """The report.json files of the inputs: files, folders (searched below) or globs."""
    found: list[Path] = []
    for text in inputs:
        paths = [Path(p) for p in sorted(glob.glob(text))] or [Path(text)]
        for path in paths:
            if path.is_dir():
                found += sorted(path.rglob("report.json"))
            elif path.exists():
                found.append(path)
            else:
                raise InfraError(
                    f"{path}: no such file or folder; give the partition jobs' "
                    "run folders or report.json files"
                )
    return list(dict.fromkeys(p.resolve() for p in found))


def read(reports: Sequence[Path]) -> list[Partition]:
    """Every partition once, of one plan; InfraError naming what is wrong."""
    partitions: dict[int, Partition] = {}
    plans: set[tuple[str, int]] = set()
    for path in reports:
        report = read_report(path)
        place = report.get("partition") if report else None
        if report is None or not isinstance(place, dict):
            raise InfraError(f"{path}: not the report of a partition job (run --partition)")
        part = Partition(
            int(place["index"]), int(place["total"]), str(place["plan"]), path.parent, report
        )
        plans.add((part.plan, part.total))
        if len(plans) > 1:
            raise InfraError(
                f"{path}: partition {part.index} is of another plan than the "
                "others; merge the jobs of one build"
            )
        if part.index in partitions:
            if partitions[part.index].report.get("run_id") == report.get("run_id"):
                # The same run found twice: an artifact upload that followed its `latest`
                # link keeps a second copy of the folder. A second *run* is an error.
                continue
            raise InfraError(
                f"partition {part.index}/{part.total} reported twice: "
                f"{partitions[part.index].folder} and {part.folder}"
            )
        partitions[part.index] = part
    if not partitions:
        raise InfraError("no partition reports found; give the jobs' run folders")
    total = next(iter(plans))[1]
    missing = [str(k) for k in range(1, total + 1) if k not in partitions]
    if missing:
        raise InfraError(
            f"partition {', '.join(missing)} of {total} never reported; its job "
            "failed before it wrote a report, or its folder was not downloaded"
        )
    seen: dict[str, int] = {}
    for part in partitions.values():
        for entry in part.report["shards"]:
            if entry["name"] in seen:
                raise InfraError(
                    f'shard "{entry["name"]}" ran in partitions '
                    f"{seen[entry['name']]} and {part.index}"
                )
            seen[entry["name"]] = part.index
    return [partitions[k] for k in sorted(partitions)]


def merge(partitions: Sequence[Partition], run_id: str, run_dir: Path) -> RunSummary:
    """One summary of all partitions; each partition's files copied into
    `run_dir`/partition-K/, and the paths the reports name pointing there."""
    results: list[ShardResult] = []
    shards: list[Shard] = []
    workers: list[WorkerReport] = []
    errors: list[str] = []
    for part in partitions:
        moved = run_dir / f"partition-{part.index}"
        shutil.copytree(part.folder, moved, dirs_exist_ok=True)
        for entry in part.report["shards"]:
            results.append(_result(entry, part, moved))
            if isinstance(entry.get("options"), dict):
                try:
                    shards.append(from_json(entry["options"]))
                except ValueError:
                    pass
        for w in part.report.get("workers") or []:
            workers.append(
                WorkerReport(
                    name=f"{part.index}:{w.get('name')}",
                    url=str(w.get("url") or ""),
                    slots=int(w.get("slots") or 0),
                    lost=str(w.get("lost") or ""),
                    load=str(w.get("load") or ""),
                    sent=int(w.get("sent") or 0),
                    full_size=int(w.get("full_size") or 0),
                    load_seconds=float(w.get("load_seconds") or 0.0),
                    required=bool(w.get("required")),
                    load_started=_number(w.get("load_started")),
                    codec=str(w.get("codec") or "none"),
                    wire=int(w.get("wire") or 0),
                )
            )
        code = part.report.get("exit_code")
        if code not in (EXIT_OK, EXIT_FAILED, None):
            errors.append(f"partition {part.index} exited {code}")
    reports = [p.report for p in partitions]
    return RunSummary(
        run_id=run_id,
        project=str(reports[0].get("project") or ""),
        image_id=reports[0].get("image_id"),
        started=min(float(r.get("started") or 0) for r in reports),
        finished=max(float(r.get("finished") or 0) for r in reports),
        results=tuple(results),
        interrupted=False,
        workers=tuple(workers),
        error="; ".join(errors),
        shards=tuple(shards),
        partitions=tuple(
            {
                "index": p.index,
                "total": p.total,
                "run_id": p.report.get("run_id"),
                "exit_code": p.report.get("exit_code"),
                "folder": str(p.folder),
                # Which machine ran it and what it spent before its shards: a slow job's
                # load or a lost worker shows here, by partition.
                "machine": (p.report.get("partition") or {}).get("machine"),
                "started": p.report.get("started"),
                "finished": p.report.get("finished"),
                "workers": [w.get("name") for w in p.report.get("workers") or []],
                "phases": p.report.get("phases"),
            }
            for p in partitions
        ),
    )


def _result(entry: dict[str, Any], part: Partition, moved: Path) -> ShardResult:
    run_id = str(part.report.get("run_id") or "")

    def here(path: str | None) -> str | None:
        # Recorded as the job's machine had it: the same file, under the copied folder.
        if not path:
            return path
        _, sep, rest = path.partition(f"/{run_id}/")
        return str(moved / rest) if sep else path

    try:
        status = Status(entry.get("status") or "ERROR")
    except ValueError:
        status = Status.ERROR
    return ShardResult(
        name=entry["name"],
        status=status,
        exit_code=entry.get("exit_code"),
        started=entry.get("started"),
        finished=entry.get("finished"),
        worker=f"{part.index}:{entry['worker']}" if entry.get("worker") else None,
        slot=entry.get("slot"),
        log_path=here(entry.get("log")),
        detail=str(entry.get("detail") or ""),
        attempt=int(entry.get("attempt") or 1),
        artifacts=tuple(p for a in entry.get("artifacts") or [] if (p := here(a))),
        artifacts_note=str(entry.get("artifacts_note") or ""),
        junit=here(entry.get("junit")),
        image=entry.get("image"),
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
