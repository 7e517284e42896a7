"""Past runs, read back from their reports in .shardrun/runs/<run-id>/report.json: what
`runs` lists, `show` prints, `run --failed` reruns and `repro` reproduces. File reading."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.model.errors import ConfigError
from shardrun.model.results import FAILED
from shardrun.state import layout

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class PastRun:
    run_id: str
    report: dict[str, Any]

    def failed_names(self) -> set[str]:
        return {s["name"] for s in self.report.get("shards", []) if s.get("status") in FAILED}

    def shard(self, name: str) -> dict[str, Any] | None:
        """The shard's entry, if it ran (it has a worker) in this run."""
        for entry in self.report.get("shards", []):
            if entry.get("name") == name and entry.get("worker"):
                return entry
        return None


def load(state_dir: Path, run_id: str | None = None) -> PastRun:
    """The run `run_id`, or the latest one. ConfigError (one line) if there is none."""
    runs = layout.runs(state_dir)
    if run_id is None:
        latest = layout.latest_link(state_dir)
        if not latest.is_symlink():
            raise ConfigError(f"no earlier run in {runs}; run `shardrun run` first")
        run_id = latest.readlink().name
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f'--run "{run_id}" is not a run ID; `shardrun runs` lists them')
    path = layout.report_json(state_dir, run_id)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no run {run_id} in {runs}; `shardrun runs` lists them") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}); pick another run with --run") from None
    if not isinstance(report, dict) or not isinstance(report.get("shards"), list):
        raise ConfigError(f"{path} is not a shardrun report; pick another run with --run")
    return PastRun(run_id, report)


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started: float | None
    image: str
    counts: str
    exit_code: int | None


def past_runs(state_dir: Path) -> list[RunRow]:
    """Every recorded run, newest first; a folder without a readable report is skipped."""
    runs = layout.runs(state_dir)
    rows = []
    for folder in sorted(runs.iterdir() if runs.is_dir() else [], reverse=True):
        if folder.name == layout.LATEST or folder.is_symlink():
            continue
        try:
            report = json.loads((folder / "report.json").read_text())
            shards = report["shards"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        statuses: dict[str, int] = {}
        for shard in shards:
            statuses[shard.get("status", "?")] = statuses.get(shard.get("status", "?"), 0) + 1
        counts = ", ".join(f"{n} {s.lower()}" for s, n in statuses.items()) or "none run"
        rows.append(
            RunRow(
                folder.name,
                report.get("started"),
                report.get("image_id") or "",
                counts,
                report.get("exit_code"),
            )
        )
    return rows


def resolve_show(state_dir: Path, first: str | None, second: str | None) -> tuple[str, str | None]:
    """`show [RUN] [SHARD]`: (run ID, shard or None). One argument is a run if a run has
    that ID, else a shard of the latest run."""
    if first and second:
        return first, second
    if first and layout.report_json(state_dir, first).is_file():
        return first, None
    latest = load(state_dir).run_id
    return latest, first


def shard_log(past: PastRun, shard: str) -> Path:
    for entry in past.report.get("shards", []):
        if entry.get("name") == shard:
            if not entry.get("log"):
                raise ConfigError(f'shard "{shard}" did not run in run {past.run_id}: no log')
            return Path(entry["log"])
    names = ", ".join(s.get("name", "?") for s in past.report.get("shards", [])[:8])
    raise ConfigError(f'run {past.run_id} has no shard "{shard}"; its shards: {names}')
