"""One shard in one container: create, start, stream logs, wait with a deadline, remove.

Every blocking docker-SDK call runs in a thread. Whatever happens (failure, timeout,
cancellation), the container is removed in a shielded scope before this returns.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import docker
import requests
from anyio import to_thread
from anyio.abc import TaskGroup
from docker.models.containers import _create_container_args

from shardrun import reap as reap_mod
from shardrun import streams
from shardrun.events import Emit, ShardOutput
from shardrun.masking import Masker
from shardrun.owner import LABEL_PROJECT, LABEL_RUN, LABEL_SHARD  # noqa: F401 - re-exported
from shardrun.plan import Shard
from shardrun.results import ShardResult, Status
from shardrun.run_options import OPTIONS

_NON_SSH_ERRORS: tuple[type[BaseException], ...] = (
    docker.errors.DockerException, requests.exceptions.RequestException, OSError,
)


def _ssh_errors() -> tuple[type[BaseException], ...]:
    # paramiko is imported for ssh:// workers alone (issue 7); until it is, none of its
    # errors can be raised.
    ssh = sys.modules.get("paramiko.ssh_exception")
    return (ssh.SSHException,) if ssh is not None else ()


def engine_errors() -> tuple[type[BaseException], ...]:
    """What a worker that dies mid-shard raises, depending on the transport: docker-py's,
    requests' and socket errors, and paramiko's for ssh:// once it is loaded."""
    return _NON_SSH_ERRORS + _ssh_errors()


# Rebound by engine.load_ssh_transport when an ssh:// worker loads paramiko later.
ENGINE_ERRORS: tuple[type[BaseException], ...] = engine_errors()


def is_transport(exc: BaseException) -> bool:
    """True if the worker is in trouble rather than the shard: the call never got an
    answer (refused, reset, timed out, an SSH channel closed) or the engine failed on
    its side (5xx). A 4xx is the engine refusing this shard's own options."""
    if isinstance(exc, docker.errors.APIError) and exc.status_code is not None:
        return not 400 <= exc.status_code < 500
    if isinstance(exc, (requests.exceptions.RequestException, *_ssh_errors())):
        return True  # (requests' errors are OSErrors too: they must not fall through)
    if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError)):
        return False  # a local file: this machine's problem, not the worker's
    return isinstance(exc, engine_errors())


_OUTPUT_EVERY = 0.25  # seconds between last-line updates sent to the UI per shard
_KILL_GRACE = 10.0  # seconds a killed container gets to report its exit before we move on
_REMOVE_WITHIN = 15.0  # seconds to remove a container before leaving it to the final reap
_LINE_MAX = 4096  # bytes of an unfinished line kept for the live view's last line


@dataclass(frozen=True)
class Placement:
    """Where a shard runs: the worker's client and name, and the slot number on it."""

    client: docker.DockerClient
    worker: str
    slot: int


def container_options(
    shard: Shard, image_id: str, labels: dict[str, str], secrets: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments for `containers.create`: the shard's options in docker-py terms.

    `secrets` holds the values of the shard's `secret-env` names, read from the host's
    environment at run time; they go to the engine and nowhere else.
    """
    options: dict[str, Any] = {"image": image_id, "labels": labels, "detach": True}
    for option in OPTIONS:
        for keyword, value in option.create(getattr(shard, option.name), secrets or {}).items():
            # env and secret-env both give "environment": add to it, not replace it.
            options[keyword] = {**options[keyword], **value} if keyword in options else value
    return options


class _LogSink:
    """Writes a container's output to its log file and reports the last line, throttled.

    Output passes through the run's Masker first, so no secret value reaches the log
    file, the live view or a report, even when a read splits it in two.
    """

    def __init__(self, path: Path, shard: str, emit: Emit, masker: Masker) -> None:
        self.path, self.shard, self.emit, self.masker = path, shard, emit, masker
        self._partial = b""
        self._last_sent = 0.0
        self.last_line = ""

    def follow(self, read: Callable[[], bytes], close: Callable[[], None]) -> None:
        """Until the attach stream ends (the container exited, or it was closed)."""
        demux = streams.Demux()
        try:
            with open(self.path, "ab") as out:
                try:
                    for block in streams.blocks(read):
                        self._write(out, self.masker.feed(demux.feed(block)))
                finally:
                    self._write(out, self.masker.flush())
        finally:
            close()
        if self._partial:
            self.last_line = self._partial.decode(errors="replace").strip() or self.last_line
        self.emit(ShardOutput(name=self.shard, line=self.last_line))

    def _write(self, out, data: bytes) -> None:
        if data:
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
            text = data[start:end].decode(errors="replace").strip()
            if text:
                self.last_line = text
                break
            end = start - 1
        self._partial = data[data.rfind(b"\n") + 1:][-_LINE_MAX:]
        now = time.monotonic()
        if now - self._last_sent >= _OUTPUT_EVERY:
            self._last_sent = now
            self.emit(ShardOutput(name=self.shard, line=self.last_line))


def not_started(
    shard: Shard, worker: str, slot: int, log_path: Path, why: str, attempt: int = 1,
    worker_fault: bool = False,
) -> ShardResult:
    """The ERROR result of a shard whose container could not even be created."""
    now = time.time()
    return ShardResult(
        name=shard.name, status=Status.ERROR, exit_code=None, started=now, finished=now,
        worker=worker, slot=slot, log_path=str(log_path), detail=why, attempt=attempt,
        worker_fault=worker_fault,
    )


@dataclass(frozen=True)
class _Outcome:
    status: Status
    code: int | None = None
    detail: str = ""
    worker_fault: bool = False


async def run_shard(
    shard: Shard,
    place: Placement,
    image_id: str,
    labels: dict[str, str],
    log_path: Path,
    emit: Emit,
    limiter: anyio.CapacityLimiter,
    attempt: int = 1,
    cleanup: TaskGroup | None = None,
    secrets: Mapping[str, str] | None = None,
) -> ShardResult:
    """Run one shard to an outcome. Only cancellation propagates; failures are results.

    A transport failure on any call (refused, reset, timed out) is the worker's fault:
    the result says so, and the scheduler moves the shard. With `cleanup`, the exited
    container is removed in that task group, off the slot's critical path, so the slot
    takes its next shard at once; the caller's final reap by label still covers an
    interrupt.
    """
    client = place.client
    masker = Masker((secrets or {}).values())
    options = container_options(shard, image_id, labels, secrets)
    try:
        # The low-level call: the high-level create inspects the new container, a round
        # trip on every shard's critical path that tells us nothing.
        container_id = await to_thread.run_sync(_create, client, options, limiter=limiter)
    except ENGINE_ERRORS as exc:
        why = f"could not create the container: {masker.mask_text(_explain(exc))}"
        return not_started(shard, place.worker, place.slot, log_path, why, attempt,
                           worker_fault=is_transport(exc))
    sink = _LogSink(log_path, shard.name, emit, masker)
    started = time.time()
    try:
        outcome, started = await _supervise(client, container_id, shard, sink, limiter)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await remove(client, container_id, limiter)
        raise
    finished = time.time()
    if cleanup is not None:
        cleanup.start_soon(remove, client, container_id, limiter)
    else:
        await remove(client, container_id, limiter)
    return ShardResult(
        name=shard.name, status=outcome.status, exit_code=outcome.code, started=started,
        finished=finished, worker=place.worker, slot=place.slot, log_path=str(log_path),
        detail=masker.mask_text(outcome.detail), attempt=attempt,
        worker_fault=outcome.worker_fault,
    )


def _create(client: docker.DockerClient, options: dict[str, Any]) -> str:
    args = _create_container_args({**options, "version": client.api._version})
    return client.api.create_container(**args)["Id"]


async def _supervise(
    client, container_id: str, shard: Shard, sink: _LogSink, limiter
) -> tuple[_Outcome, float]:
    """Attach, start the container, follow its output, wait for its exit within the
    shard's timeout. Returns the outcome and when the container started.

    Attached before the start, as `docker run` does: the output comes straight from the
    container's stdio, none is missed, and no log driver sits in between.
    """
    started = time.time()
    try:
        sink.path.write_bytes(b"")
        read, close = await to_thread.run_sync(
            streams.attach, client, container_id, limiter=limiter
        )
        try:
            await to_thread.run_sync(client.api.start, container_id, limiter=limiter)
        except BaseException:
            close()
            raise
        started = time.time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_follow, sink, read, close, limiter)
            outcome = await _wait(client, container_id, shard.timeout, limiter)
    except ENGINE_ERRORS as exc:
        return _Outcome(Status.ERROR, None, _explain(exc), is_transport(exc)), started
    return outcome, started


async def _follow(sink: _LogSink, read, close, limiter) -> None:
    # Abandoned on cancellation: the stream only ends once the container is gone, and the
    # container is removed after this task group exits.
    try:
        await to_thread.run_sync(sink.follow, read, close, limiter=limiter,
                                 abandon_on_cancel=True)
    except ENGINE_ERRORS:
        pass  # the container went away; its exit status is what counts


async def _wait(client, container_id: str, timeout: float | None, limiter) -> _Outcome:
    """The container's exit, or TIMEOUT after killing a container that outlived
    `timeout`, or an ERROR (the worker's fault) if the engine went away while we waited.

    docker-py's wait(timeout=) is only an HTTP read timeout, so the deadline is ours.
    Waiting after `start` with the default condition ("not-running") returns at once
    for a container that already exited, so a fast exit is not missed. Engine errors are
    returned, not raised: raised inside the log task group they would arrive wrapped.
    """
    with anyio.move_on_after(timeout):
        try:
            status = await to_thread.run_sync(
                lambda: client.api.wait(container_id, timeout=None), limiter=limiter,
                abandon_on_cancel=True,
            )
        except ENGINE_ERRORS as exc:
            why = f"lost the engine while waiting: {_explain(exc)}"
            return _Outcome(Status.ERROR, None, why, worker_fault=is_transport(exc))
        code = int(status.get("StatusCode", -1))
        return _Outcome(Status.PASS if code == 0 else Status.FAIL, code)
    with anyio.CancelScope(shield=True), anyio.move_on_after(_KILL_GRACE):
        await to_thread.run_sync(_kill, client, container_id, limiter=limiter,
                                 abandon_on_cancel=True)
    return _Outcome(Status.TIMEOUT, None, f"killed after the {timeout:g}s timeout")


def _kill(client, container_id: str) -> None:
    # It may have exited between the deadline and the kill, or its engine may be gone.
    with contextlib.suppress(*ENGINE_ERRORS):
        client.api.kill(container_id)


async def remove(client: docker.DockerClient, container_id: str, limiter) -> None:
    def _remove() -> None:
        # Never raises: a container of a lost worker cannot be reached, a 409 means its
        # removal is already under way, and the run's final reap by label is the backstop.
        with contextlib.suppress(*ENGINE_ERRORS):
            client.api.remove_container(container_id, force=True, v=True)

    # Bounded: an unreachable worker must not hold up the end of the run.
    with anyio.move_on_after(_REMOVE_WITHIN):
        await to_thread.run_sync(_remove, limiter=limiter, abandon_on_cancel=True)


async def reap(client: docker.DockerClient, run_id: str, limiter) -> int:
    """Remove every container of `run_id`, found by label: the backstop for all exits."""
    return await to_thread.run_sync(
        reap_mod.remove_run, client, run_id, limiter=limiter, abandon_on_cancel=True
    )


def _explain(exc: Exception) -> str:
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[-1][:300]
