"""Past runs, read back from their reports in .shardrun/runs/<run-id>/report.json: what
`runs` lists, `show` prints, `run --failed` reruns and `repro` reproduces. File reading."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.model.errors import ConfigError
from shardrun.model.image_ref import CONTENT_REPO, content_tag
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
    given = Path(run_id)
    if (given / "report.json").is_file() or (given.name == "report.json" and given.is_file()):
        # A run folder downloaded from elsewhere (a CI's merged run), not under runs/.
        path = given / "report.json" if given.is_dir() else given
        run_id = path.parent.name
    elif not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f'--run "{run_id}" is not a run ID; `shardrun runs` lists them')
    else:
        path = layout.report_json(state_dir, run_id)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no run {run_id} in {runs}; `shardrun runs` lists them") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}); pick another run with --run") from None
    if not is_report(report):
        raise ConfigError(f"{path} is not a shardrun report; pick another run with --run")
    return PastRun(run_id, report)


def read_report(path: Path) -> dict[str, Any] | None:
    """A run's report.json, or None if it is missing, unreadable or not a report."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return report if is_report(report) else None


def is_report(data: Any) -> bool:
    """Whether `data` has the shape of report.json in every field shardrun reads back
    (report.schema.json has the whole of it): a report is data written to disk, and a
    damaged or hand-edited one must be a missing run, never a crash."""
    if not isinstance(data, dict):
        return False
    top = (
        _is(data.get("started"), (int, float))
        and _is(data.get("image_id"), str)
        and _is(data.get("exit_code"), int)
        and isinstance(data.get("workers", []), list)
        and all(
            isinstance(w, dict) and _is(w.get("name"), str) and _is(w.get("url"), str)
            for w in data.get("workers", [])
        )
    )
    shards = data.get("shards")
    return top and isinstance(shards, list) and all(_is_shard(s) for s in shards)


def _is_shard(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and all(_is(entry.get(key), str) for key in ("status", "worker", "log", "image"))
        and _is(entry.get("options"), dict)
    )


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    """None, or a value of `kind` (a bool is no number here)."""
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def run_ids(state_dir: Path) -> list[str]:
    """The runs that have a report, newest first (run IDs start with their time); a
    folder that cannot be read is left out."""
    try:
        folders = list(layout.runs(state_dir).iterdir())
    except OSError:
        return []
    return sorted(
        (f.name for f in folders if f.name != layout.LATEST and _has_report(f)), reverse=True
    )


def _has_report(folder: Path) -> bool:
    try:
        return not folder.is_symlink() and (folder / "report.json").is_file()
    except OSError:  # a folder we may not enter
        return False


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started: float | None
    image: str
    counts: str
    exit_code: int | None


def past_runs(state_dir: Path) -> list[RunRow]:
    """Every recorded run, newest first; a run without a readable report is left out."""
    rows = []
    for run_id in run_ids(state_dir):
        report = read_report(layout.report_json(state_dir, run_id))
        if report is None:
            continue
        statuses: dict[str, int] = {}
        for shard in report["shards"]:
            status = shard.get("status") or "?"
            statuses[status] = statuses.get(status, 0) + 1
        counts = ", ".join(f"{n} {s.lower()}" for s, n in statuses.items()) or "none run"
        rows.append(
            RunRow(
                run_id,
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
    if first and first in run_ids(state_dir):
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


def used_images(state_dir: Path) -> set[str]:
    """The content tags of the images the remaining runs ran, and of the latest build."""
    ids = set()
    for run_id in run_ids(state_dir):
        report = read_report(layout.report_json(state_dir, run_id))
        if report is not None:
            ids.add(report.get("image_id") or "")
            ids.update(shard.get("image") or "" for shard in report["shards"])
    try:
        ids.add(layout.latest_image(state_dir).read_text().strip())
    except OSError:
        pass
    return {i if i.startswith(CONTENT_REPO) else content_tag(i) for i in ids if i}
