"""`shardrun clean`'s files: run folders and cache files not used for a while."""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from shardrun.model import owner
from shardrun.state import foreign, layout, results_record

_OWNER_MAX = 64 * 1024  # a dozen labels


@dataclass(frozen=True)
class Cleaned:
    runs: int
    cache_files: int
    freed: int  # bytes
    passes: int = 0  # entries of results.json no run had used since the cutoff


def clean_files(state_dir: Path, older_than: float, now: float | None = None) -> Cleaned:
    """Remove run folders and cache files not touched for `older_than` seconds. The latest
    run and the most recently used image tarball stay, whatever their age."""
    cutoff = (now or time.time()) - older_than
    runs, removed, freed = 0, 0, 0
    runs_dir, cache, link = (
        layout.runs(state_dir),
        layout.cache(state_dir),
        layout.latest_link(state_dir),
    )
    latest = link.readlink().name if link.is_symlink() else None
    for folder in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        if folder.is_symlink() or not folder.is_dir() or folder.name == latest:
            continue
        if _live(layout.run_owner(state_dir, folder.name)):
            continue  # a run still writing there: its report would point at nothing
        if _newest_mtime(folder) < cutoff:
            freed += _size(folder)
            shutil.rmtree(folder, ignore_errors=True)
            runs += 1
    tarballs = sorted(
        (p for p in cache.glob("*.tar")) if cache.is_dir() else [],
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    newest_full = next((p for p in tarballs if layout.is_full_tarball(p)), None)
    for path in tarballs:
        if path != newest_full and path.stat().st_mtime < cutoff:
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
                removed += 1
    passes = results_record.prune(layout.results_record(state_dir), cutoff)
    return Cleaned(runs, removed, freed, passes)


def _live(marker: Path) -> bool:
    """Whether the run that marked its folder may still be writing it: unless its runner
    is provably gone (this host, and that process dead), it is taken to live."""
    try:
        # A FIFO or a nested file here must not hang or crash `clean` (state/foreign.py).
        labels = foreign.read_json(marker, _OWNER_MAX, within=marker.parent, depth=2)
    except FileNotFoundError:
        return False  # finished: the marker goes once the reports are written
    except (OSError, foreign.Refused):
        return True  # unreadable: nothing proves it dead
    if not isinstance(labels, dict):
        return True
    return not owner.is_orphan({str(k): str(v) for k, v in labels.items()}, "running")


def _newest_mtime(folder: Path) -> float:
    return max(
        (p.stat().st_mtime for p in folder.rglob("*") if p.is_file()),
        default=folder.stat().st_mtime,
    )


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
