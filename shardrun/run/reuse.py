"""Results keyed by content: a shard that passed before on an image of the same content,
with the same options, is reported as passed from that run instead of being run again.

`look_up` runs after the image is known (built, or read from an image file): it keys
every shard that may be reused (plan/reuse_key.py) and finds those the record of passes
(`.shardrun/results.json`, state/results_record.py) holds. Each of them gets a result of
its own in the new run folder: a log line naming the run it came from, and a JUnit file
of its test cases, so the run's junit.xml (and a merge's) stays complete. `remember` adds
the run's clean passes to the record once the run is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from shardrun.model.results import ShardResult, Status
from shardrun.model.shard import Shard
from shardrun.plan import reuse_key, reused
from shardrun.state import latest_image, layout, results_record
from shardrun.state.results_record import Case, Passed

if TYPE_CHECKING:  # `list` asks what would be reused and needs neither engines nor JUnit
    from shardrun.engine.api import Engine
    from shardrun.report import junit


@dataclass(frozen=True)
class Found:
    keys: Mapping[str, str] = field(default_factory=dict)  # shard -> key, each one eligible
    reused: tuple[ShardResult, ...] = ()
    passed: Mapping[str, Passed] = field(default_factory=dict)  # shard -> what it reuses
    warnings: tuple[str, ...] = ()


def image_content(engine: Engine | None, image_id: str, state_dir: Path) -> str:
    """The image's content digest: from the build engine's inspect, or (no engine: it
    came as a file) from the config in its cached tarball; remembered as the latest, for
    `list`. ValueError if unreadable."""
    from shardrun.distribute.artifact import image_file
    from shardrun.distribute.artifact.layers import UNREADABLE
    from shardrun.distribute.artifact.tarball import tarball_path
    from shardrun.engine.api import ENGINE_FAILURES

    if engine is not None:
        try:
            content = reuse_key.content_of_inspect(engine.image_inspect(image_id))
        except ENGINE_FAILURES as exc:
            raise ValueError(f"inspecting image {image_id[:19]} failed: {exc}") from None
    else:
        try:
            config = image_file.config_of(tarball_path(layout.cache(state_dir), image_id))
        except UNREADABLE as exc:
            raise ValueError(f"the image's config cannot be read: {exc}") from None
        content = reuse_key.content_of_config(config)
    latest_image.record_content(state_dir, content)
    return content


def look_up(
    shards: Sequence[Shard],
    content: str,
    secrets: Mapping[str, str],
    record: Path,
    run_dir: Path,
    worker_volumes: bool,
) -> Found:
    """Key the shards that may be reused and settle those passed before. Blocking."""
    keys, earlier, warning = reused.passed_before(shards, content, secrets, record, worker_volumes)
    results = tuple(settled(s.name, earlier[s.name], run_dir) for s in shards if s.name in earlier)
    return Found(keys, results, earlier, (warning,) if warning else ())


def settled(name: str, passed: Passed, run_dir: Path) -> ShardResult:
    """The result of shard `name`, not run: PASS as `passed` recorded it, its log and
    its JUnit file (the cases carried over) written into `run_dir`."""
    from shardrun.report import junit

    key = passed.key
    log = layout.shard_log(run_dir, name, 1)
    log.write_text(
        f"shardrun: not run: it passed in run {passed.run} ({passed.duration:.1f}s) on an "
        f"image of the same content, with the same options (key {key})\n"
    )
    cases = None
    if passed.cases:
        cases = layout.shard_folder(run_dir, name, 1) / layout.SHARD_JUNIT
        cases.parent.mkdir(exist_ok=True)
        junit.write_passed(cases, name, [_as_junit(c) for c in passed.cases])
    return ShardResult(
        name=name,
        status=Status.PASS,
        exit_code=0,
        started=None,  # it ran in no container of this run: no time, no timings
        finished=None,
        worker=None,
        slot=None,
        log_path=str(log),
        detail=f"reused from run {passed.run}",
        junit=str(cases) if cases else None,
        reused_from=passed.run,
        reuse_key=key,
    )


def _as_junit(case: Case) -> junit.Case:
    from shardrun.report import junit

    return junit.Case(case.classname, case.name, case.time, "skipped" if case.skipped else "passed")


def remember(
    record: Path,
    results: Sequence[ShardResult],
    run_id: str,
    image_id: str | None,
    earlier: Mapping[str, Passed] = MappingProxyType({}),
) -> int:
    """Add the run's clean passes to the record, and what it reused again as last used
    now (so that `clean` prunes only what no run uses); how many. A pass on a retry, or
    with a case that failed before it passed, is flaky: not recorded."""
    from shardrun.report import junit

    now = time.time()
    entries = []
    for result in results:
        if result.reuse_key is None or result.status is not Status.PASS or result.attempt != 1:
            continue
        if result.reused_from is not None:
            if result.name in earlier:
                entries.append(replace(earlier[result.name], finished=now))
            continue
        found = junit.flaky_and_cases(result)
        if found is not None and found[1]:
            continue
        cases = tuple(
            Case(c.classname, c.name, c.time, c.outcome == "skipped")
            for c in (found[0] if found else ())
            if c.outcome in ("passed", "skipped")
        )
        entries.append(
            Passed(
                key=result.reuse_key,
                shard=result.name,
                run=run_id,
                finished=result.finished or now,
                duration=result.duration or 0.0,
                image=image_id or "",
                cases=cases,
            )
        )
    if entries:
        results_record.add(record, entries)
    return len(entries)
