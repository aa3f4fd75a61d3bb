"""The worker's event loop: uvloop when it is installed, else asyncio's own.

uvloop runs the same asyncio programs on libuv, in C; the worker spends 2-4% less CPU per job
with it (README, Dependencies). It is part of the ``worker`` extra on platforms that have it;
``ROUTEQ_EVENT_LOOP=asyncio`` keeps the standard loop (to rule it out when debugging).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

T = TypeVar("T")
EVENT_LOOPS: Final = ("uvloop", "asyncio")


def name(wanted: str = "uvloop") -> str:
    """The loop :func:`run` uses for ``wanted`` (``ROUTEQ_EVENT_LOOP``): "uvloop" when asked for
    and installed, else "asyncio"."""
    if wanted == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T], wanted: str = "uvloop") -> T:
    if name(wanted) == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)
