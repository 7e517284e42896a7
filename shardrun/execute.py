"""One shard in one container: create, start, stream logs, wait with a deadline, remove.

Every blocking docker-SDK call runs in a thread. Whatever happens (failure, timeout,
cancellation), the container is removed in a shielded scope before this returns.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import docker
import requests
from anyio import to_thread
from anyio.abc import TaskGroup
from paramiko.ssh_exception import SSHException

from shardrun.events import Emit, ShardOutput
from shardrun.plan import Shard
from shardrun.results import ShardResult, Status

# A worker that dies mid-shard surfaces as any of these, depending on the transport
# (paramiko's for ssh://).
ENGINE_ERRORS: tuple[type[BaseException], ...] = (
    docker.errors.DockerException, requests.exceptions.RequestException, OSError, SSHException,
)

LABEL_RUN = "shardrun.run"
LABEL_SHARD = "shardrun.shard"
LABEL_PROJECT = "shardrun.project"

_OUTPUT_EVERY = 0.25  # seconds between last-line updates sent to the UI per shard
_KILL_GRACE = 10.0  # seconds a killed container gets to report its exit before we move on
_REMOVE_WITHIN = 15.0  # seconds to remove a container before leaving it to the final reap


@dataclass(frozen=True)
class Placement:
    """Where a shard runs: the worker's client and name, and the slot number on it."""

    client: docker.DockerClient
    worker: str
    slot: int


def container_options(shard: Shard, image_id: str, labels: dict[str, str]) -> dict[str, Any]:
    """Keyword arguments for `containers.create`: the shard's options in docker-py terms."""
    options: dict[str, Any] = {
        "image": image_id,
        "labels": labels,
        "detach": True,
        "environment": dict(shard.env),
        "volumes": [
            f"{v.source}:{v.target}:{'ro' if v.read_only else 'rw'}" for v in shard.volumes
        ],
    }
    optional = {
        "command": list(shard.command) if shard.command is not None else None,
        "entrypoint": list(shard.entrypoint) if shard.entrypoint is not None else None,
        "working_dir": shard.workdir,
        "user": shard.user,
        "shm_size": shard.shm_size,
        "security_opt": list(shard.security_opt) or None,
        "network_mode": shard.network,
        "nano_cpus": round(shard.cpus * 1e9) if shard.cpus else None,
        "mem_limit": shard.memory,
    }
    options.update({key: value for key, value in optional.items() if value is not None})
    return options


class _LogSink:
    """Writes a container's output to its log file and reports the last line, throttled."""

    def __init__(self, path: Path, shard: str, emit: Emit) -> None:
        self.path, self.shard, self.emit = path, shard, emit
        self._partial = b""
        self._last_sent = 0.0
        self.last_line = ""

    def follow(self, client: docker.DockerClient, container_id: str) -> None:
        stream = client.api.logs(container_id, stream=True, follow=True)
        # Closed explicitly: docker-py reads logs from the raw socket, so an exhausted stream
        # is never returned to the pool; over ssh each leaked one holds an SSH session
        # until sshd refuses more (MaxSessions, default 10).
        with contextlib.closing(stream), open(self.path, "ab") as out:
            for chunk in stream:
                out.write(chunk)
                out.flush()
                self._note(chunk)
        if self._partial:
            self.last_line = self._partial.decode(errors="replace").strip() or self.last_line
        self.emit(ShardOutput(name=self.shard, line=self.last_line))

    def _note(self, chunk: bytes) -> None:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in reversed(lines):
            text = line.decode(errors="replace").strip()
            if text:
                self.last_line = text
                break
        now = time.monotonic()
        if now - self._last_sent >= _OUTPUT_EVERY:
            self._last_sent = now
            self.emit(ShardOutput(name=self.shard, line=self.last_line))


def not_started(
    shard: Shard, worker: str, slot: int, log_path: Path, why: str, attempt: int = 1
) -> ShardResult:
    """The ERROR result of a shard whose container could not even be created."""
    now = time.time()
    return ShardResult(
        name=shard.name, status=Status.ERROR, exit_code=None, started=now, finished=now,
        worker=worker, slot=slot, log_path=str(log_path), detail=why, attempt=attempt,
    )


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
) -> ShardResult:
    """Run one shard to an outcome. Only cancellation propagates; failures are results.

    With `cleanup`, the exited container is removed in that task group, off the slot's
    critical path, so the slot takes its next shard at once; the caller's final reap by
    label still covers an interrupt.
    """
    client = place.client
    started = time.time()

    def result(status: Status, code: int | None = None, detail: str = "",
               ran: tuple[float, float] | None = None) -> ShardResult:
        begin, end = ran or (started, time.time())
        return ShardResult(
            name=shard.name, status=status, exit_code=code, started=begin, finished=end,
            worker=place.worker, slot=place.slot, log_path=str(log_path), detail=detail,
            attempt=attempt,
        )

    options = container_options(shard, image_id, labels)
    try:
        container = await to_thread.run_sync(
            lambda: client.containers.create(**options), limiter=limiter
        )
    except ENGINE_ERRORS as exc:
        why = f"could not create the container: {_explain(exc)}"
        return not_started(shard, place.worker, place.slot, log_path, why, attempt)
    try:
        outcome = await _supervise(container, shard, log_path, emit, limiter)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await remove(client, container.id, limiter)
        raise
    if cleanup is not None:
        cleanup.start_soon(remove, client, container.id, limiter)
    else:
        await remove(client, container.id, limiter)
    status, code, detail, ran = outcome
    return result(status, code, detail, ran)


async def _supervise(container, shard: Shard, log_path: Path, emit: Emit, limiter):
    """Start the container, follow its logs, wait for its exit within the shard's timeout."""
    client = container.client
    started = time.time()
    try:
        log_path.write_bytes(b"")
        await to_thread.run_sync(container.start, limiter=limiter)
        started = time.time()
        sink = _LogSink(log_path, shard.name, emit)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_follow, sink, client, container.id, limiter)
            code, error = await _wait(container, shard.timeout, limiter)
    except ENGINE_ERRORS as exc:
        return Status.ERROR, None, _explain(exc), (started, time.time())
    ran = (started, time.time())
    if error:
        return Status.ERROR, None, error, ran
    if code is None:
        return Status.TIMEOUT, None, f"killed after the {shard.timeout:g}s timeout", ran
    return (Status.PASS if code == 0 else Status.FAIL), code, "", ran


async def _follow(sink: _LogSink, client, container_id: str, limiter) -> None:
    # Abandoned on cancellation: the stream only ends once the container is gone, and the
    # container is removed after this task group exits.
    try:
        await to_thread.run_sync(
            sink.follow, client, container_id, limiter=limiter, abandon_on_cancel=True
        )
    except ENGINE_ERRORS:
        pass  # the container went away; its exit status is what counts


async def _wait(container, timeout: float | None, limiter) -> tuple[int | None, str]:
    """(exit code, ""), or (None, "") after killing a container that outlived `timeout`,
    or (None, why) if the engine went away while we waited.

    docker-py's wait(timeout=) is only an HTTP read timeout, so the deadline is ours.
    Waiting after `start` with the default condition ("not-running") returns at once
    for a container that already exited, so a fast exit is not missed. Engine errors are
    returned, not raised: raised inside the log task group they would arrive wrapped.
    """
    with anyio.move_on_after(timeout):
        try:
            status = await to_thread.run_sync(
                lambda: container.wait(timeout=None), limiter=limiter, abandon_on_cancel=True
            )
        except ENGINE_ERRORS as exc:
            return None, f"lost the engine while waiting: {_explain(exc)}"
        return int(status.get("StatusCode", -1)), ""
    with anyio.CancelScope(shield=True), anyio.move_on_after(_KILL_GRACE):
        await to_thread.run_sync(_kill, container, limiter=limiter, abandon_on_cancel=True)
    return None, ""


def _kill(container) -> None:
    # It may have exited between the deadline and the kill, or its engine may be gone.
    with contextlib.suppress(*ENGINE_ERRORS):
        container.kill()


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

    def _reap() -> int:
        found = client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
        for container in found:
            try:
                client.api.remove_container(container["Id"], force=True, v=True)
            except docker.errors.NotFound:
                pass
        return len(found)

    return await to_thread.run_sync(_reap, limiter=limiter, abandon_on_cancel=True)


def _explain(exc: Exception) -> str:
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[-1][:300]
