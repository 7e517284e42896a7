"""One shard in one container: create, attach, start, stream output, wait with a
deadline, remove.

Every engine call blocks and runs in a thread. Whatever happens (failure, timeout,
cancellation), the container is removed in a shielded scope before this returns.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio
from anyio import CapacityLimiter, to_thread
from anyio.abc import TaskGroup

from shardrun.cleanup import reap as reap_mod
from shardrun.engine.api import ENGINE_FAILURES, ContainerRequest, Engine, OutputStream
from shardrun.model.errors import TransportError
from shardrun.model.events import Emit, ShardOutput
from shardrun.model.results import FAILED_TESTS, ShardResult, Status
from shardrun.model.shard import Shard
from shardrun.model.text import one_line
from shardrun.run.shard import collect, streams
from shardrun.run.shard.masking import Masker
from shardrun.state import layout

_OUTPUT_EVERY = 0.25  # seconds between last-line updates sent to the UI per shard
_KILL_GRACE = 10.0  # seconds a killed container gets to report its exit before we move on
_REMOVE_WITHIN = 15.0  # seconds to remove a container before leaving it to the final reap
_LINE_MAX = 4096  # bytes of an unfinished line kept for the live view's last line


@dataclass(frozen=True)
class Placement:
    """Where a shard runs: the worker's engine and name, and the slot number on it."""

    engine: Engine
    worker: str
    slot: int


class _LogSink:
    """Writes a container's output to its log file and reports the last line, throttled.

    Output passes through the run's Masker first, so no secret value reaches the log
    file, the live view or a report, even when a read splits it in two.
    """

    def __init__(self, path: Path, shard: str, emit: Emit, secrets: Iterable[str]) -> None:
        self.path, self.shard, self.emit = path, shard, emit
        # One masker per stream, each before the two are merged: a secret printed half on
        # stdout and half on stderr, with anything between, is still one secret to each.
        self._maskers = {1: Masker(secrets), 2: Masker(secrets)}
        self._partial = b""
        self._last_sent = 0.0
        self._stopped = False
        self.last_line = ""

    def stop(self) -> None:
        self._stopped = True

    def follow(self, stream: OutputStream) -> None:
        """Until the attach stream ends (the container exited, or it was closed)."""
        demux = streams.Demux()
        try:
            with open(self.path, "ab") as out:
                try:
                    for block in streams.blocks(stream.read):
                        self._write(out, self._masked(demux, block))
                finally:
                    self._write(out, b"".join(m.flush() for m in self._maskers.values()))
        finally:
            stream.close()
        if self._partial:
            partial = one_line(self._partial.decode(errors="replace").strip())
            self.last_line = partial or self.last_line
        self.emit(ShardOutput(name=self.shard, line=self.last_line))

    def _masked(self, demux: streams.Demux, block: bytes) -> bytes:
        if not self._maskers[1]:  # no secrets: nothing to hold back or hide
            return demux.feed(block)
        maskers = self._maskers
        return b"".join(maskers.get(n, maskers[1]).feed(p) for n, p in demux.frames(block))

    def _write(self, out: BinaryIO, data: bytes) -> None:
        if data and not self._stopped:
            out.write(data)
            out.flush()
            self._note(data)

    def _note(self, chunk: bytes) -> None:
        # Only the last complete line matters, and chunks can be 256 KB of short lines:
        # look back from the end instead of splitting the whole chunk.
        data = self._partial + chunk
        end = data.rfind(b"\n")
        while end > 0:
            start = data.rfind(b"\n", 0, end) + 1
            # One line: the live view and its events show it, and a test wrote it.
            text = one_line(data[start:end].decode(errors="replace").strip())
            if text:
                self.last_line = text
                break
            end = start - 1
        self._partial = data[data.rfind(b"\n") + 1 :][-_LINE_MAX:]
        now = time.monotonic()
        if now - self._last_sent >= _OUTPUT_EVERY:
            self._last_sent = now
            self.emit(ShardOutput(name=self.shard, line=self.last_line))


def not_started(
    shard: Shard,
    worker: str,
    slot: int,
    log_path: Path,
    why: str,
    attempt: int = 1,
    worker_fault: bool = False,
) -> ShardResult:
    """The ERROR result of a shard whose container could not even be created."""
    now = time.time()
    return ShardResult(
        name=shard.name,
        status=Status.ERROR,
        exit_code=None,
        started=now,
        finished=now,
        worker=worker,
        slot=slot,
        log_path=str(log_path),
        detail=why,
        attempt=attempt,
        worker_fault=worker_fault,
    )


@dataclass(frozen=True)
class _Outcome:
    status: Status
    code: int | None = None
    detail: str = ""
    worker_fault: bool = False

    @classmethod
    def failed(cls, exc: Exception) -> _Outcome:
        # A transport error is the worker's fault: the scheduler moves the shard.
        return cls(Status.ERROR, None, str(exc), worker_fault=isinstance(exc, TransportError))


@dataclass(frozen=True)
class ShardJob:
    """One attempt at one shard on one slot: what to create, where, and what to keep."""

    shard: Shard  # as it runs on this worker (its volumes replaced: plan.for_worker)
    place: Placement
    image: str  # what to create the container from: an image ID or content tag
    labels: Mapping[str, str] = field(hash=False)
    log_path: Path
    attempt: int = 1
    # The values of its secret-env names: to the engine and nowhere else.
    secrets: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)
    keep_failed: bool = False  # a FAIL or TIMEOUT keeps its stopped container


async def run_shard(
    job: ShardJob, emit: Emit, limiter: anyio.CapacityLimiter, cleanup: TaskGroup | None = None
) -> ShardResult:
    """Run one shard to an outcome. Only cancellation propagates; failures are results.

    A transport failure on any call (refused, reset, timed out) is the worker's fault:
    the result says so, and the scheduler moves the shard. With `cleanup`, the exited
    container is removed in that task group, off the slot's critical path, so the slot
    takes its next shard at once; the caller's final reap by label still covers an
    interrupt.
    """
    shard, place, image_id, log_path = job.shard, job.place, job.image, job.log_path
    attempt, secrets, keep_failed = job.attempt, job.secrets, job.keep_failed
    engine = place.engine
    masker = Masker(secrets.values())
    request = ContainerRequest(image_id, shard, job.labels, secrets)
    try:
        container_id = await to_thread.run_sync(engine.create, request, limiter=limiter)
    except ENGINE_FAILURES as exc:
        outcome = _Outcome.failed(exc)
        return not_started(
            shard,
            place.worker,
            place.slot,
            log_path,
            masker.mask_text(outcome.detail),
            attempt,
            outcome.worker_fault,
        )
    sink = _LogSink(log_path, shard.name, emit, secrets.values())
    started = time.time()
    try:
        outcome, started = await _supervise(engine, container_id, shard, sink, limiter)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await remove(engine, container_id, limiter)
        raise
    finished = time.time()
    collected = await _collect(engine, container_id, job, outcome, limiter)
    kept = None
    if keep_failed and outcome.status in FAILED_TESTS:
        kept = await _keep(engine, container_id, shard.name, limiter)
    if kept is None and cleanup is not None:
        cleanup.start_soon(remove, engine, container_id, limiter)
    elif kept is None:
        await remove(engine, container_id, limiter)
    return ShardResult(
        name=shard.name,
        status=outcome.status,
        exit_code=outcome.code,
        started=started,
        finished=finished,
        worker=place.worker,
        slot=place.slot,
        log_path=str(log_path),
        detail=masker.mask_text(outcome.detail),
        attempt=attempt,
        worker_fault=outcome.worker_fault,
        artifacts=collected.files,
        artifacts_note=masker.mask_text(collected.note),
        artifacts_left_out=tuple(masker.mask_text(item) for item in collected.left_out),
        junit=collected.junit,
        image=image_id,
        kept=kept,
    )


async def _keep(
    engine: Engine, container_id: str, shard: str, limiter: CapacityLimiter | None
) -> str | None:
    """Keep a failed shard's stopped container for a look inside: renamed, the run's end
    and orphan sweeps leave it (see reap.py). None if that fails: it is removed then."""
    name = f"{reap_mod.KEPT_PREFIX}{shard}-{container_id[:12]}"
    try:
        await to_thread.run_sync(engine.rename, container_id, name, limiter=limiter)
    except ENGINE_FAILURES:
        return None
    return name


async def _collect(
    engine: Engine,
    container_id: str,
    job: ShardJob,
    outcome: _Outcome,
    limiter: CapacityLimiter | None,
) -> collect.Collected:
    """The shard's artifacts and JUnit file, copied out after it exited (or was killed at
    its timeout) and before it is removed: into <run>/<shard>[.<attempt>]/, masked. Nothing
    when its worker failed it: the container may be out of reach."""
    shard = job.shard
    if outcome.worker_fault or not (collect.wanted(shard, outcome.status) or shard.junit):
        return collect.Collected()
    dest = layout.shard_folder(job.log_path.parent, shard.name, job.attempt)
    try:
        return await to_thread.run_sync(
            collect.collect,
            engine,
            container_id,
            shard,
            outcome.status,
            dest,
            tuple(job.secrets.values()),
            limiter=limiter,
        )
    except TransportError as exc:
        return collect.Collected(missing=(f"(copying failed: {exc})",))


async def _supervise(
    engine: Engine,
    container_id: str,
    shard: Shard,
    sink: _LogSink,
    limiter: CapacityLimiter | None,
) -> tuple[_Outcome, float]:
    """Attach, start the container, follow its output, wait for its exit within the
    shard's timeout. Returns the outcome and when the container started.

    Attached before the start, as `docker run` does: the output comes straight from the
    container's stdio, none is missed, and no log driver sits in between.
    """
    started = time.time()
    try:
        sink.path.write_bytes(b"")
        stream = await to_thread.run_sync(engine.attach, container_id, limiter=limiter)
        try:
            await to_thread.run_sync(engine.start, container_id, limiter=limiter)
        except BaseException:
            stream.close()
            raise
        started = time.time()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_follow, sink, stream, limiter)
                outcome = await _wait(engine, container_id, shard.timeout, limiter)
        finally:
            # Cancelled (a lost worker, an interrupt), the reader thread is abandoned: it
            # must write nothing more, since the shard may rerun elsewhere into the same
            # log, and closing the stream ends its read. After a normal exit, a no-op.
            sink.stop()
            stream.close()
    except ENGINE_FAILURES as exc:
        return _Outcome.failed(exc), started
    return outcome, started


async def _follow(sink: _LogSink, stream: OutputStream, limiter: CapacityLimiter | None) -> None:
    # Abandoned on cancellation: the stream only ends once the container is gone, and the
    # container is removed after this task group exits.
    with contextlib.suppress(*ENGINE_FAILURES):  # gone: its exit status is what counts
        await to_thread.run_sync(sink.follow, stream, limiter=limiter, abandon_on_cancel=True)


async def _wait(
    engine: Engine, container_id: str, timeout: float | None, limiter: CapacityLimiter | None
) -> _Outcome:
    """The container's exit, or TIMEOUT after killing a container that outlived
    `timeout`, or an ERROR (the worker's fault) if the engine went away while we waited.

    The deadline is ours: the engine's wait has none. Waiting after `start` with the
    default condition ("not-running") returns at once for a container that already
    exited, so a fast exit is not missed. Engine errors are returned, not raised: raised
    inside the log task group they would arrive wrapped.
    """
    with anyio.move_on_after(timeout):
        try:
            code = await to_thread.run_sync(
                engine.wait, container_id, limiter=limiter, abandon_on_cancel=True
            )
        except ENGINE_FAILURES as exc:
            return _Outcome.failed(exc)
        return _Outcome(Status.PASS if code == 0 else Status.FAIL, code)
    # Shielded and bounded; the engine may be gone.
    with (
        anyio.CancelScope(shield=True),
        anyio.move_on_after(_KILL_GRACE),
        contextlib.suppress(*ENGINE_FAILURES),
    ):
        await to_thread.run_sync(engine.kill, container_id, limiter=limiter, abandon_on_cancel=True)
    return _Outcome(Status.TIMEOUT, None, f"killed after the {timeout:g}s timeout")


async def remove(engine: Engine, container_id: str, limiter: CapacityLimiter | None) -> None:
    """Never raises: a container of a lost worker cannot be reached, and the run's final
    reap by label is the backstop. Bounded: an unreachable worker must not hold up the
    end of the run."""
    with anyio.move_on_after(_REMOVE_WITHIN), contextlib.suppress(*ENGINE_FAILURES):
        await to_thread.run_sync(
            engine.remove, container_id, limiter=limiter, abandon_on_cancel=True
        )


async def reap(engine: Engine, run_id: str, limiter: CapacityLimiter | None) -> int:
    """Remove every container of `run_id`, found by label: the backstop for all exits."""
    return await to_thread.run_sync(
        reap_mod.remove_run, engine, run_id, limiter=limiter, abandon_on_cancel=True
    )
