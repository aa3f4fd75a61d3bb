"""``routeq demo --dashboard``: the dashboard served on the demo's own Redis until Ctrl-C.

With the in-process stand-in, the demo's data lives only as long as the demo's process, so
``routeq dashboard`` in another terminal cannot see it: the demo serves the same page
(:func:`worker.dashboard.app.make_app` over :class:`worker.dashboard.data.DashboardData`) itself,
with its worker still running, so the page shows the jobs, the rollups and a live worker.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TextIO

from aiohttp import web
from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.dashboard.app import make_app
from worker.dashboard.data import DashboardData


@dataclass(frozen=True)
class DashboardOptions:
    host: str = "127.0.0.1"
    port: int = 8080


class DashboardError(RuntimeError):
    """The dashboard cannot listen (the message is the one line to show)."""


@asynccontextmanager
async def serving(redis: Redis, keys: Keys, options: DashboardOptions) -> AsyncIterator[str]:
    """The dashboard over ``redis`` and ``keys`` while the block runs; yields its URL."""
    runner = web.AppRunner(make_app(DashboardData(redis, keys)), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, options.host, options.port).start()
        except OSError as exc:
            raise DashboardError(f"cannot listen on {options.host}:{options.port}: "
                                 f"{exc.strerror or exc}") from None
        port = next((a[1] for a in runner.addresses if isinstance(a, tuple)), options.port)
        host = f"[{options.host}]" if ":" in options.host else options.host
        yield f"http://{host}:{port}/"
    finally:
        await runner.cleanup()


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
