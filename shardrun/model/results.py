"""What a run produced: one ShardResult per shard, and the run's exit code."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shardrun.model.errors import EXIT_FAILED, EXIT_INFRA, EXIT_INTERRUPTED, EXIT_OK


# Not StrEnum: its str() is the bare value, and reports and messages were written against
# this one's.
class Status(str, enum.Enum):  # noqa: UP042
    PASS = "PASS"
    FAIL = "FAIL"  # the shard's command exited non-zero: a test result
    TIMEOUT = "TIMEOUT"  # killed at the shard's timeout
    ERROR = "ERROR"  # the container could not be created or run: infrastructure
    CANCELLED = "CANCELLED"  # never finished because the run was interrupted
    NOT_RUN = "NOT RUN"  # no worker was left to run it
    SKIPPED = "SKIPPED"  # not started: --fail-fast stopped the run after a failure


@dataclass(frozen=True)
class ShardResult:
    name: str
    status: Status
    exit_code: int | None
    started: float | None  # wall-clock seconds since the epoch
    finished: float | None
    worker: str | None
    slot: int | None
    log_path: str | None
    detail: str = ""  # why, for ERROR / TIMEOUT / NOT RUN
    attempt: int = 1
    # The worker failed the shard (a transport error), not the shard itself: the
    # scheduler moves it to another worker whatever a later ping says.
    worker_fault: bool = False
    artifacts: tuple[str, ...] = ()  # host paths of the files copied out of its container
    artifacts_note: str = ""  # what artifacts-max left out, or which paths were missing
    # Each artifact not copied, "container path: why" (a link, over the cap, ...).
    artifacts_left_out: tuple[str, ...] = ()
    junit: str | None = None  # host path of the shard's own JUnit file, if it wrote one
    image: str | None = None  # what its container was created from: an image ID or tag
    kept: str | None = None  # the name of its stopped container, kept by --keep-failed
    # Not run: it passed in this run (a run ID) on the same content, with the same options.
    reused_from: str | None = None
    reuse_key: str | None = None  # what a pass of it is recorded under (plan/reuse_key.py)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


# The statuses of a shard that did not pass its tests or could not run them: what
# `--failed` reruns, `--retries` retries, artifacts-when = "failure" copies and reports name.
FAILED = (Status.FAIL, Status.TIMEOUT, Status.ERROR)
# Those of them where the tests ran and did not pass (not an error running them): what
# fail-fast stops on, --keep-failed keeps, and JUnit calls a failure.
FAILED_TESTS = (Status.FAIL, Status.TIMEOUT)


def exit_code(results: list[ShardResult], interrupted: bool = False) -> int:
    """Most severe first: an interrupt, then infrastructure, then test failures."""
    if interrupted:
        return EXIT_INTERRUPTED
    statuses = {r.status for r in results}
    if statuses & {Status.ERROR, Status.NOT_RUN}:
        return EXIT_INFRA
    if statuses & {*FAILED_TESTS, Status.CANCELLED, Status.SKIPPED}:
        return EXIT_FAILED
    return EXIT_OK
