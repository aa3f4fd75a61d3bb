"""Ending a loop whose cancellation was lost.

Python 3.11's ``asyncio.wait_for`` (which redis-py uses around each send when ``socket_timeout`` is
set) swallows a cancellation that lands just as its inner call completes. The task's
``cancelling()`` count still records that a cancel was asked for, so every loop that waits on
Redis calls :func:`raise_if_cancelled` each turn: Ctrl-C and shutdown then always end it.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
