"""Every report of a run, written from one RunSummary into its folder."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from shardrun.model.errors import ConfigError
from shardrun.report import html as html_report
from shardrun.report import junit
from shardrun.report.json_report import to_json
from shardrun.report.markdown import to_markdown
from shardrun.report.summary import RunSummary, log_tail
from shardrun.state import layout
from shardrun.state.files import write_atomic


def to_junit(summary: RunSummary) -> str:
    """A testsuite per shard: the cases of the shard's own JUnit file, or one testcase for
    the shard, whose failure carries the log tail so CI shows it inline."""
    return junit.to_xml(
        summary.project, summary.results, summary.finished - summary.started, log_tail
    )


REPORTS = layout.REPORTS


def write(summary: RunSummary, run_dir: Path, step_summary: Path | None = None) -> list[Path]:
    """The run's report files; with `step_summary`, also append the Markdown there."""
    paths = [run_dir / name for name in REPORTS]
    markdown = to_markdown(summary)
    write_atomic(paths[0], json.dumps(to_json(summary), indent=2))
    write_atomic(paths[1], to_junit(summary))
    write_atomic(paths[2], markdown)
    write_atomic(paths[3], html_report.to_html(summary, run_dir))
    if step_summary is not None:
        with open(step_summary, "a", encoding="utf-8") as out:  # CI collects, never replaces
            out.write(markdown)
    return paths


def copy_report(made: Path, wanted: Path) -> Path:
    """A copy of a run's report where CI wants it (atomically: a reader never sees half)."""
    try:
        write_atomic(wanted, made.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot write {wanted}: {exc.strerror}; give a writable path") from None
    return wanted


def save_reports(state_dir: Path, run_dir: Path, summary: RunSummary, latest: bool = True) -> None:
    """Every report into `run_dir`, the Markdown also to $GITHUB_STEP_SUMMARY, and (with
    `latest`) runs/latest pointing at it."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    write(summary, run_dir, Path(step_summary) if step_summary else None)
    if not latest:
        return
    link = layout.latest_link(state_dir)
    with contextlib.suppress(OSError):  # a convenience only
        link.unlink(missing_ok=True)
        link.symlink_to(run_dir.name)
