"""Serving the dashboard: ``routeq dashboard`` and ``routeq demo --dashboard`` share this."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.dashboard.app import make_app
from worker.dashboard.data import DashboardData


@dataclass(frozen=True)
class DashboardOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # required as a bearer token (or ?token=) when set


class DashboardError(RuntimeError):
    """The dashboard cannot listen (the message is the one line to show)."""


@asynccontextmanager
async def serving(redis: Redis, keys: Keys, options: DashboardOptions) -> AsyncIterator[str]:
    """The dashboard over ``redis`` and ``keys`` while the block runs; yields its URL."""
    runner = web.AppRunner(make_app(DashboardData(redis, keys), token=options.token), access_log=None)
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
