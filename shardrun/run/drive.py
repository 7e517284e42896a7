"""Running a stage under a front end: its events into a view, and Ctrl-C / SIGTERM as an
interrupt that the stage answers by cleaning up."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio

from shardrun.model.errors import EXIT_INTERRUPTED, Interrupted
from shardrun.model.events import Emit, Emitter, Event
from shardrun.state.files import exit_now

T = TypeVar("T")


class View(Protocol):
    def handle(self, event: Event) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...


@contextlib.asynccontextmanager
async def cancelled_by(interrupt: anyio.Event) -> AsyncIterator[None]:
    """Cancel the body when `interrupt` is set (Ctrl-C or SIGTERM, set by `drive`)."""

    async def watch(scope: anyio.CancelScope) -> None:
        await interrupt.wait()
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        yield
        tg.cancel_scope.cancel()


async def unless_interrupted(interrupt: anyio.Event, work: Callable[[], Awaitable[T]]) -> T:
    """`work()`, or Interrupted once `interrupt` cancels it: for stages that, unlike a run,
    have no summary of their own to return when stopped early."""
    async with cancelled_by(interrupt):
        return await work()
    raise Interrupted


async def drive(
    view: View, work: Callable[[Emit, anyio.Event], Awaitable[T]], leftovers: str = ""
) -> T:
    """Run `work` with an event stream into `view`, and Ctrl-C / SIGTERM as an interrupt.

    The first signal asks `work` to stop and clean up; a second says cleanup is under
    way; a third exits at once, saying what may be left (`leftovers`).
    """
    send, receive = anyio.create_memory_object_stream[Event](math.inf)

    async def consume() -> None:
        async with receive:
            async for event in receive:
                view.handle(event)

    async def watch_signals(interrupt: anyio.Event, *, task_status: Any) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            count = 0
            async for _ in signals:
                count += 1
                if count == 1:
                    interrupt.set()
                elif count == 2:
                    print(
                        "shardrun: still cleaning up (removing what this run started); "
                        "interrupt once more to exit at once",
                        file=sys.stderr,
                        flush=True,
                    )
                else:
                    left = f": {leftovers}" if leftovers else ""
                    print(f"shardrun: exiting without cleaning up{left}", file=sys.stderr)
                    exit_now(EXIT_INTERRUPTED)

    interrupt = anyio.Event()
    async with anyio.create_task_group() as outer:
        outer.start_soon(consume)
        with send:
            async with anyio.create_task_group() as inner:
                await inner.start(watch_signals, interrupt)  # before any work
                try:
                    return await work(Emitter(send), interrupt)
                finally:
                    inner.cancel_scope.cancel()
    raise AssertionError("unreachable: the task group returns or raises")


def run_under(
    view: View, work: Callable[[Emit, anyio.Event], Awaitable[T]], leftovers: str = ""
) -> T:
    """`drive` in a new event loop, with `view` open for the duration."""
    with view:
        return anyio.run(drive, view, work, leftovers)
