"""On every worker at once: one call per item, all concurrently, results in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
from anyio import to_thread

T = TypeVar("T")
R = TypeVar("R")


async def on_each(items: Sequence[T], call: Callable[[T], Awaitable[R]]) -> list[R]:
    """`await call(item)` for every item concurrently; the results in the items' order."""
    done: dict[int, R] = {}

    async def one(index: int, item: T) -> None:
        done[index] = await call(item)

    async with anyio.create_task_group() as tg:
        for index, item in enumerate(items):
            tg.start_soon(one, index, item)
    return [done[i] for i in sorted(done)]


async def in_threads(items: Sequence[T], call: Callable[[T], R]) -> list[R]:
    """`on_each` for a blocking call, each in a thread. A thread is abandoned on
    cancellation: a call to a host cut off from the network has no timeout of its own,
    and an interrupt must not wait for it."""

    async def one(item: T) -> R:
        return await to_thread.run_sync(call, item, abandon_on_cancel=True)

    return await on_each(items, one)
