"""Polling on observable state, for tests that must pass on a slow or busy machine.

A fixed ``sleep`` guesses how long something takes; on a loaded 2-core runner the guess is wrong
in one direction (flaky failures) or the other (slow suites). These helpers instead poll a
predicate until it gives a truthy value, with a generous ``timeout`` that only bounds a broken
run. The value that satisfied the predicate is returned, so a probe can both wait and measure;
on timeout an AssertionError names what was awaited and the last value seen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from producer_client.client import Client
from producer_client.keys import QUEUES
from tests.support.faults import in_progress

T = TypeVar("T")

_REPR_LIMIT = 500


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T | None]], *, timeout: float, interval: float = ..., what: str
) -> T: ...


@overload
async def eventually(
    predicate: Callable[[], T | None], *, timeout: float, interval: float = ..., what: str
) -> T: ...


async def eventually(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.02, what: str
) -> Any:
    """The first truthy value of ``predicate()`` (sync or async), polled every ``interval`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, timeout, value))
        await asyncio.sleep(interval)


def _timed_out(what: str, timeout: float, last: object) -> str:
    shown = repr(last)
    if len(shown) > _REPR_LIMIT:
        shown = shown[:_REPR_LIMIT] + "…"
    return f"timed out after {timeout:g}s waiting for {what}; last value: {shown}"


async def nothing_pending(client: Client) -> bool:
    """No job queued or running. A claimed job stays in its queue until its run has ended and
    written everything, so this proves any run, wanted or not, is over."""
    for queue in QUEUES:
        if await client.queue_depth(queue):
            return False
    return await in_progress(client.redis) == 0
