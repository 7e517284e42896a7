"""shardrun.results: the run's exit code and a result's duration."""

from __future__ import annotations

import pytest

from shardrun.model.errors import EXIT_FAILED, EXIT_INFRA, EXIT_INTERRUPTED, EXIT_OK
from shardrun.model.results import ShardResult, Status, exit_code


def result(status: Status, name: str = "s", started=None, finished=None) -> ShardResult:
    return ShardResult(
        name=name,
        status=status,
        exit_code=None,
        started=started,
        finished=finished,
        worker=None,
        slot=None,
        log_path=None,
    )


def results(*statuses: Status) -> list[ShardResult]:
    return [result(s, name=f"s{i}") for i, s in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((), EXIT_OK),
        ((Status.PASS, Status.PASS), EXIT_OK),
        ((Status.PASS, Status.FAIL), EXIT_FAILED),
        ((Status.TIMEOUT,), EXIT_FAILED),
        ((Status.CANCELLED, Status.PASS), EXIT_FAILED),
        ((Status.ERROR,), EXIT_INFRA),
        ((Status.NOT_RUN, Status.PASS), EXIT_INFRA),
        # Infrastructure outranks test failures: the failures may be its consequence.
        ((Status.FAIL, Status.TIMEOUT, Status.ERROR), EXIT_INFRA),
        ((Status.FAIL, Status.NOT_RUN), EXIT_INFRA),
    ],
)
def test_exit_code_is_the_most_severe_outcome(statuses, expected):
    assert exit_code(results(*statuses)) == expected


@pytest.mark.parametrize("statuses", [(), (Status.PASS,), (Status.ERROR, Status.FAIL)])
def test_an_interrupted_run_exits_130_whatever_the_results(statuses):
    assert exit_code(results(*statuses), interrupted=True) == EXIT_INTERRUPTED == 130


def test_exit_code_values_follow_the_design():
    assert (EXIT_OK, EXIT_FAILED, EXIT_INFRA) == (0, 1, 4)


def test_duration_is_finished_minus_started():
    assert result(Status.PASS, started=100.0, finished=112.5).duration == 12.5


@pytest.mark.parametrize(("started", "finished"), [(None, None), (100.0, None), (None, 5.0)])
def test_duration_is_none_without_both_times(started, finished):
    assert result(Status.NOT_RUN, started=started, finished=finished).duration is None


def test_not_run_is_spelled_with_a_space():
    # The value is what reports and the summary table show.
    assert Status.NOT_RUN.value == "NOT RUN"
