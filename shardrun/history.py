"""Past runs, read back from their reports in .shardrun/runs/<run-id>/report.json: what
`run --failed` reruns and what `repro` reproduces. Pure file reading."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.errors import ConfigError

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
FAILED = ("FAIL", "TIMEOUT", "ERROR")


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
    runs = state_dir / "runs"
    if run_id is None:
        latest = runs / "latest"
        if not latest.is_symlink():
            raise ConfigError(f"no earlier run in {runs}; run `shardrun run` first")
        run_id = latest.readlink().name
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f'--run "{run_id}" is not a run ID; `shardrun runs` lists them')
    path = runs / run_id / "report.json"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no run {run_id} in {runs}; `shardrun runs` lists them") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}); pick another run with --run") from None
    if not isinstance(report, dict) or not isinstance(report.get("shards"), list):
        raise ConfigError(f"{path} is not a shardrun report; pick another run with --run")
    return PastRun(run_id, report)
