"""Past runs, read back from their reports in .shardrun/runs/<run-id>/report.json: what
`runs` lists, `show` prints, `run --failed` reruns and `repro` reproduces. File reading.

A report may come from elsewhere (`--run FOLDER`: a CI run downloaded), and anything may
stand in a run's folder, so reports are read as foreign files (state/foreign.py): a
regular file inside its own folder, bounded in size and depth, of a report's shape, and
the paths it names (a shard's log) only ever inside that folder.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.model.errors import ConfigError
from shardrun.model.image_ref import CONTENT_REPO, content_tag
from shardrun.model.results import FAILED
from shardrun.state import foreign, latest_image, layout
from shardrun.state.shard_record import is_name

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# A report holds each shard's test cases (the intake keeps up to 20,000 a shard, names
# of up to 500 characters): a large suite's run records some tens of MB. Past this, it
# is no report shardrun wrote, and parsing it would cost seconds and GBs.
REPORT_MAX = 64_000_000
_TEXT_MAX = 4096  # characters of a recorded path (a log) or ID
_EPOCH_MAX = 1e11  # epoch seconds (the year 5138): `runs` shows the date; 1e308 has none


@dataclass(frozen=True)
class PastRun:
    run_id: str
    report: dict[str, Any]
    folder: Path  # the run's folder: every path its report names lies inside

    def failed_names(self) -> set[str]:
        return {s["name"] for s in self.report.get("shards", []) if s.get("status") in FAILED}

    def shard(self, name: str) -> dict[str, Any] | None:
        """The shard's entry, if it ran (it has a worker) in this run."""
        for entry in self.report.get("shards", []):
            if entry.get("name") == name and entry.get("worker"):
                return entry
        return None


def load(state_dir: Path, run_id: str | None = None) -> PastRun:
    """The run `run_id` (an ID, or a run folder or its report.json from anywhere), or the
    latest one. ConfigError (one line) if there is none, or its report is refused."""
    runs = layout.runs(state_dir)
    if run_id is None:
        latest = layout.latest_link(state_dir)
        if not latest.is_symlink():
            raise ConfigError(f"no earlier run in {runs}; run `shardrun run` first")
        run_id = latest.readlink().name
    given = Path(run_id)
    if _is_run_path(given):  # a run from elsewhere (a CI's merged run), or its report
        folder = given.parent if given.name == layout.REPORT_JSON else given
        within = folder
    elif not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f'--run "{run_id}" is not a run ID; `shardrun runs` lists them')
    else:
        folder, within = layout.run_dir(state_dir, run_id), runs
    path = folder / layout.REPORT_JSON
    try:
        report = foreign.read_json(path, REPORT_MAX, within=within)
    except FileNotFoundError:
        raise ConfigError(f"no run {run_id} in {runs}; `shardrun runs` lists them") from None
    except foreign.Refused as exc:
        raise ConfigError(
            f"{path} is not a shardrun report ({exc}); pick another run with --run"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{path} cannot be read ({exc.strerror}); pick another run with --run"
        ) from None
    if not is_report(report):
        raise ConfigError(f"{path} is not a shardrun report; pick another run with --run")
    return PastRun(folder.name, report, folder)


def read_report(path: Path, within: Path | None = None) -> dict[str, Any] | None:
    """A run's report.json, or None if it is missing, unreadable or not a report. It
    must lie in `within` (default: its own folder), and be no link."""
    try:
        report = foreign.read_json(path, REPORT_MAX, within=within or path.parent)
    except (OSError, ValueError):  # Refused is a ValueError
        return None
    return report if is_report(report) else None


def is_report(data: Any) -> bool:
    """Whether `data` has the shape of report.json in every field shardrun reads back
    (report.schema.json has the whole of it): a report is data written to disk, and a
    damaged or hand-edited one must be a missing run, never a crash."""
    if not isinstance(data, dict):
        return False
    started, code = data.get("started"), data.get("exit_code")
    top = (
        (started is None or foreign.number(started, 0, _EPOCH_MAX) is not None)
        and _is_text(data.get("image_id"))
        and (code is None or (foreign.number(code, 0, 255) is not None and _is(code, int)))
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
        and is_name(entry.get("name"))
        and all(_is_text(entry.get(key)) for key in ("status", "worker", "log", "image"))
        and _is(entry.get("options"), dict)
    )


def _is_text(value: Any) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= _TEXT_MAX)


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
        return not folder.is_symlink() and (folder / layout.REPORT_JSON).is_file()
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
        report = read_report(layout.report_json(state_dir, run_id), layout.runs(state_dir))
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
    that ID or it is a run's folder or report.json (a downloaded one: `load` takes those),
    else a shard of the latest run."""
    if first and second:
        return first, second
    if first and (first in run_ids(state_dir) or _is_run_path(Path(first))):
        return first, None
    latest = load(state_dir).run_id
    return latest, first


def _is_run_path(given: Path) -> bool:
    """Whether `load` takes `given` as a run's folder or its report.json. lexists: a
    report that is a FIFO or a link is then refused by name, not taken for a shard."""
    if given.name == layout.REPORT_JSON:
        return os.path.lexists(given)
    return given.is_dir() and os.path.lexists(given / layout.REPORT_JSON)


def shard_log(past: PastRun, shard: str) -> Path:
    """The shard's log, in the run's folder. A report records it as the machine that ran
    it had it (<...>/<run-id>/<shard>.log); only the part after the run's folder counts,
    and it must stay inside this folder, a regular file: a report cannot make `show`
    print /etc/shadow, nor hang on a FIFO."""
    for entry in past.report.get("shards", []):
        if entry.get("name") == shard:
            if not entry.get("log"):
                raise ConfigError(f'shard "{shard}" did not run in run {past.run_id}: no log')
            try:
                return _in_folder(past, entry["log"])
            except foreign.Refused as exc:
                raise ConfigError(
                    f'run {past.run_id}\'s log of "{shard}" is not one to show ({exc}); '
                    f"`shardrun show {past.run_id}` shows the run"
                ) from None
    names = ", ".join(s.get("name", "?") for s in past.report.get("shards", [])[:8])
    raise ConfigError(f'run {past.run_id} has no shard "{shard}"; its shards: {names}')


def _in_folder(past: PastRun, recorded: str) -> Path:
    path = past.folder / foreign.relative_name(after_run(past, recorded))
    with contextlib.suppress(FileNotFoundError):  # the run's folder was cleaned: the caller says so
        os.close(foreign.open_regular(path, within=past.folder))
    return path


def after_run(past: PastRun, recorded: str) -> str:
    """The part of a recorded path after the run's folder, as the machine that ran it had
    it (<...>/<run-id>/<shard>.log); the path itself if it names no run's folder."""
    for run_id in (past.report.get("run_id"), past.run_id):
        if isinstance(run_id, str) and run_id and f"/{run_id}/" in recorded:
            return recorded.partition(f"/{run_id}/")[2]
    return recorded


def used_images(state_dir: Path) -> set[str]:
    """The content tags of the images the remaining runs ran, and of the latest build."""
    ids = set()
    for run_id in run_ids(state_dir):
        report = read_report(layout.report_json(state_dir, run_id), layout.runs(state_dir))
        if report is not None:
            ids.add(report.get("image_id") or "")
            ids.update(shard.get("image") or "" for shard in report["shards"])
    ids.add(latest_image.read(state_dir) or "")
    return {i if i.startswith(CONTENT_REPO) else content_tag(i) for i in ids if i}
