"""Looking back at past runs and tidying up: `shardrun runs`, `show` and `clean`.

Runs are folders under .shardrun/runs/, each with its report.json; the cache holds image
tarballs. Pure file work, except `clean --containers`, which the CLI does per engine.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from shardrun import history
from shardrun.errors import ConfigError


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started: float | None
    image: str
    counts: str
    exit_code: int | None


def past_runs(state_dir: Path) -> list[RunRow]:
    """Every recorded run, newest first; a folder without a readable report is skipped."""
    runs = state_dir / "runs"
    rows = []
    for folder in sorted(runs.iterdir() if runs.is_dir() else [], reverse=True):
        if folder.name == "latest" or folder.is_symlink():
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
        rows.append(RunRow(folder.name, report.get("started"), report.get("image_id") or "",
                           counts, report.get("exit_code")))
    return rows


def resolve_show(state_dir: Path, first: str | None, second: str | None) -> tuple[str, str | None]:
    """`show [RUN] [SHARD]`: (run ID, shard or None). One argument is a run if a run has
    that ID, else a shard of the latest run."""
    runs = state_dir / "runs"
    if first and second:
        return first, second
    if first and (runs / first / "report.json").is_file():
        return first, None
    latest = history.load(state_dir).run_id
    return latest, first


def shard_log(past: history.PastRun, shard: str) -> Path:
    for entry in past.report.get("shards", []):
        if entry.get("name") == shard:
            if not entry.get("log"):
                raise ConfigError(f'shard "{shard}" did not run in run {past.run_id}: no log')
            return Path(entry["log"])
    names = ", ".join(s.get("name", "?") for s in past.report.get("shards", [])[:8])
    raise ConfigError(f'run {past.run_id} has no shard "{shard}"; its shards: {names}')


@dataclass(frozen=True)
class Cleaned:
    runs: int
    cache_files: int
    freed: int  # bytes


def clean_files(state_dir: Path, older_than: float, now: float | None = None) -> Cleaned:
    """Remove run folders and cache files not touched for `older_than` seconds. The latest
    run and the most recently used image tarball stay, whatever their age."""
    cutoff = (now or time.time()) - older_than
    runs, removed, freed = 0, 0, 0
    runs_dir, cache = state_dir / "runs", state_dir / "cache"
    latest = (runs_dir / "latest").readlink().name if (runs_dir / "latest").is_symlink() else None
    for folder in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        if folder.is_symlink() or not folder.is_dir() or folder.name == latest:
            continue
        if _newest_mtime(folder) < cutoff:
            freed += _size(folder)
            shutil.rmtree(folder, ignore_errors=True)
            runs += 1
    tarballs = sorted((p for p in cache.glob("*.tar")) if cache.is_dir() else [],
                      key=lambda p: p.stat().st_mtime, reverse=True)
    newest_full = next((p for p in tarballs if p.name.count(".") == 1), None)
    for path in tarballs:
        if path != newest_full and path.stat().st_mtime < cutoff:
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
                removed += 1
    return Cleaned(runs, removed, freed)


def _newest_mtime(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()),
               default=folder.stat().st_mtime)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
