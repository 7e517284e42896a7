"""A past run made again into the summary its end printed: what `show` prints. Made from
the run's report.json, checked and cut field by field as a merge checks a partition's
(merge_report); no file the report names is opened, and its paths are shown as the files
in that run's folder (a path that leaves it, as none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shardrun.model.errors import ConfigError
from shardrun.model.results import ShardResult, Status
from shardrun.model.text import counted, one_line
from shardrun.model.transit import CODECS
from shardrun.report import history, merge_report
from shardrun.report.history import PastRun
from shardrun.report.summary import RecordedCases, RunSummary, WorkerReport
from shardrun.state import foreign, layout


def run_summary(past: PastRun) -> tuple[RunSummary, RecordedCases]:
    """The run's summary as its end printed it, made again from its report (checked and
    cut field by field: merge_report), with the test cases the report recorded: what
    `show` prints. No file the report names is read (a JUnit file of a downloaded run is
    anyone's); the paths it names are shown as the files in this run's folder."""
    data = past.report
    if not isinstance(data.get("run_id"), str):
        data = {**data, "run_id": past.run_id}
    try:
        report, _ = merge_report.checked_run(data)
    except merge_report.Bad as exc:
        raise ConfigError(
            f"{past.folder / layout.REPORT_JSON} is not one to show ({exc}); "
            "pick another run with --run"
        ) from None
    results = tuple(_result(past, entry) for entry in report["shards"])
    starts = [r.started for r in results if r.started is not None]
    ends = [r.finished for r in results if r.finished is not None]
    started = report["started"] if report["started"] is not None else min(starts, default=0.0)
    finished = report["finished"] if report["finished"] is not None else max(ends, default=started)
    summary = RunSummary(
        run_id=report["run_id"],
        project=report["project"] or "",
        image_id=report["image_id"],
        started=started,
        finished=finished,
        results=results,
        interrupted=report["interrupted"],
        workers=tuple(WorkerReport(**w) for w in report["workers"]),
        error=report["error"],
        compression=_compression(report["phases"]),
    )
    cases = [_cases(raw.get("test_cases")) for raw in data["shards"]]
    recorded = RecordedCases(
        failing={r.name: found for r, (found, _) in zip(results, cases, strict=True)},
        flaky=sum(flaky for _, flaky in cases),
    )
    return summary, recorded


def report_files(past: PastRun) -> list[Path]:
    """The reports the run wrote that its folder still holds, as the run listed them."""
    return [past.folder / name for name in layout.REPORTS if (past.folder / name).is_file()]


def _result(past: PastRun, entry: dict[str, Any]) -> ShardResult:
    notes = [entry["artifacts_note"]]
    if entry["artifacts_cut"]:
        notes.append(f"{counted(entry['artifacts_cut'], 'more artifact')} not listed")
    return ShardResult(
        name=entry["name"],
        status=Status(entry["status"]),
        exit_code=entry["exit_code"],
        started=entry["started"],
        finished=entry["finished"],
        worker=entry["worker"],
        slot=entry["slot"],
        log_path=_named(past, entry["log"]),
        detail=entry["detail"],
        attempt=entry["attempt"],
        artifacts=tuple(p for a in entry["artifacts"] if (p := _named(past, a))),
        artifacts_note="; ".join(n for n in notes if n),
        image=entry["image"],
        kept=entry["kept"],
        reused_from=entry["reused_from"],
        reuse_key=entry["reuse_key"],
    )


def _named(past: PastRun, recorded: str | None) -> str | None:
    """Where a file the report names is in this run's folder, as text to show (it is not
    opened); None for a path that leaves the folder."""
    if not recorded:
        return None
    try:
        return str(past.folder / foreign.relative_name(history.after_run(past, recorded)))
    except foreign.Refused:
        return None


_CASE_MAX = 1000  # characters of a failing case's name as shown (the intake keeps 500)
_CASES_SHOWN = 10  # failing cases named per shard, as junit.failing_cases names them


def _cases(raw: Any) -> tuple[tuple[tuple[str, ...], int], int]:
    """((the first failing cases, how many failed), how many were flaky) of a shard's
    recorded test cases; read as data: anything not of their shape is passed over."""
    if not isinstance(raw, list):
        return ((), 0), 0
    shown: list[str] = []
    failed = flaky = 0
    for case in raw:
        if not isinstance(case, dict):
            continue
        flaky += case.get("flaky") is True
        if case.get("outcome") not in ("failure", "error"):
            continue
        failed += 1
        if len(shown) < _CASES_SHOWN:
            name, classname = case.get("name"), case.get("classname")
            name = name if isinstance(name, str) else "?"
            full = f"{classname}::{name}" if isinstance(classname, str) and classname else name
            shown.append(one_line(full[:_CASE_MAX]))
    return (tuple(shown), failed), flaky


def _compression(phases: Any) -> tuple[dict[str, Any], ...]:
    """The compression parts a report's phases record, each of the shape the summary
    reads (a codec it knows, sizes and CPU seconds); others are left out."""
    parts = phases.get("compression") if isinstance(phases, dict) else None
    if not isinstance(parts, list):
        return ()
    kept = []
    for part in parts:
        if not isinstance(part, dict) or part.get("codec") not in CODECS:
            continue
        raw, packed = part.get("raw"), part.get("compressed")
        cpu = foreign.number(part.get("cpu"), 0, 1e9)
        if (
            all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**63
                for n in (raw, packed)
            )
            and cpu is not None
        ):
            kept.append({"codec": part["codec"], "raw": raw, "compressed": packed, "cpu": cpu})
    return tuple(kept)
