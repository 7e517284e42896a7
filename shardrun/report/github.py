"""GitHub Actions workflow commands for a run: log groups and `::error` annotations.

What a test wrote is never a command here. Its log tail is echoed between
`::stop-commands::<token>` and `::<token>::`, with a token it cannot know, so a line of
it that looks like a workflow command (`::add-mask::`, `::set-env`, `::endgroup::`) is
printed, not obeyed; every line and every annotation is one line (model/text.py), and
annotation data is escaped as GitHub documents (`%25`, `%0D`, `%0A`; `%3A`, `%2C` in
properties).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator

from shardrun.model.results import Status
from shardrun.model.text import counted, one_line, visible_lines
from shardrun.report import junit
from shardrun.report.summary import RunSummary, log_tail

# GitHub shows 10 error annotations per step (50 per job) and drops the rest; more only
# cost log lines (100,000 failing cases made 4.9 MB of them).
MAX_ERRORS = 10


def fenced(lines: Iterable[str]) -> Iterator[str]:
    """`lines` as text GitHub prints but does not run, whatever they say."""
    token = secrets.token_hex(16)
    yield f"::stop-commands::{token}"
    yield from lines
    yield f"::{token}::"


def github_annotations(summary: RunSummary, tail_lines: int = 30) -> list[str]:
    """Each failed shard's log tail in a collapsed group, then one `::error` per failed
    shard, or per failing test case when the shard wrote JUnit: MAX_ERRORS at most, the
    last of them counting the ones left out."""
    lines: list[str] = []
    errors: list[str] = []
    for result in summary.results:
        if result.status in (Status.PASS, Status.SKIPPED):
            continue
        lines.append(f"::group::{_gh_data(result.name)}: {result.status.value}, last lines")
        lines += fenced(visible_lines(log_tail(result.log_path, tail_lines)))
        lines.append("::endgroup::")
        found = junit.flaky_and_cases(result)
        failing = [c for c in found[0] if c.failed] if found else []
        for case in failing:
            title = f"{result.name}: {case.classname}::{case.name}"
            errors.append(
                f"::error title={_gh_property(title)}::{_gh_data(case.message or case.outcome)}"
            )
        if not failing:
            why = result.detail or f"exit code {result.exit_code}"
            title = f"shard {result.name} {result.status.value}"
            errors.append(f"::error title={_gh_property(title)}::{_gh_data(why)}")
    if len(errors) > MAX_ERRORS:
        more = len(errors) - (MAX_ERRORS - 1)
        note = (
            f"{counted(more, 'more failure')} not annotated; the run's junit.xml and "
            "report.json list them"
        )
        errors[MAX_ERRORS - 1 :] = [f"::error title=shardrun::{note}"]
    return lines + errors


def set_output(path: str | None, name: str, value: str) -> None:
    """One step output (`$GITHUB_OUTPUT`'s `name=value` line), when GitHub gave the file;
    `value` is shardrun's own one-line text, never a test's."""
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{name}={one_line(value)}\n")


def _gh_data(text: str) -> str:
    # Escaped before it is made one line: GitHub turns %0A back into a line break inside
    # the annotation, which is where the message's own line breaks belong.
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return one_line(escaped)


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")
