"""``routeq demo --dashboard``: the dashboard served on the demo's own Redis until Ctrl-C.

With the in-process stand-in, the demo's data lives only as long as the demo's process, so
``routeq dashboard`` in another terminal cannot see it: the demo serves the same page
(:func:`worker.dashboard.app.make_app` over :class:`worker.dashboard.data.DashboardData`) itself,
with its worker still running, so the page shows the jobs, the rollups and a live worker.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TextIO

from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.dashboard.serve import DashboardError, DashboardOptions, serving

__all__ = ["DashboardError", "DashboardOptions", "serve_until_stopped", "serving"]


async def serve_until_stopped(redis: Redis, keys: Keys, options: DashboardOptions, *, where: str,
                              out: TextIO) -> None:
    """Serve until Ctrl-C or SIGTERM, then return (the demo then stops its worker as usual)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serving(redis, keys, options) as url:
            print(f"routeq dashboard on {url} for prefix {keys.prefix!r} on {where}: Ctrl-C stops it "
                  "(and the demo)", file=out, flush=True)
            await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
