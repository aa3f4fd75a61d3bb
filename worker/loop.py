"""The worker's event loop: uvloop when it is installed, else asyncio's own.

uvloop runs the same asyncio programs on libuv, in C; the worker's per-job CPU dropped by about a
tenth with it (README, benchmarks). It is part of the ``worker`` extra on platforms that have it;
``ROUTEQ_EVENT_LOOP=asyncio`` keeps the standard loop (to rule it out when debugging).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def name() -> str:
    """The loop :func:`run` uses: "uvloop" or "asyncio"."""
    if os.environ.get("ROUTEQ_EVENT_LOOP", "uvloop").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    if name() == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)
