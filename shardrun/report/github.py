"""GitHub Actions workflow commands for a run: log groups and `::error` annotations."""

from __future__ import annotations

from shardrun.model.results import Status
from shardrun.report import junit
from shardrun.report.summary import RunSummary, log_tail


def github_annotations(summary: RunSummary, tail_lines: int = 30) -> list[str]:
    """GitHub Actions workflow commands: each failed shard's log tail in a collapsed group,
    and one `::error` per failed shard, or per failing test case when the shard wrote JUnit."""
    lines = []
    for result in summary.results:
        if result.status in (Status.PASS, Status.SKIPPED):
            continue
        lines.append(f"::group::{_gh_data(result.name)}: {result.status.value}, last lines")
        lines += log_tail(result.log_path, tail_lines).splitlines()
        lines.append("::endgroup::")
        found = junit.flaky_and_cases(result)
        failing = [c for c in found[0] if c.failed] if found else []
        for case in failing:
            title = f"{result.name}: {case.classname}::{case.name}"
            lines.append(
                f"::error title={_gh_property(title)}::{_gh_data(case.message or case.outcome)}"
            )
        if not failing:
            why = result.detail or f"exit code {result.exit_code}"
            lines.append(
                f"::error title={_gh_property(f'shard {result.name} {result.status.value}')}"
                f"::{_gh_data(why)}"
            )
    return lines


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")
