"""Serving one worker's ``/metrics``, and refreshing its gauges of shared state meanwhile.

aiohttp on the worker's own event loop: a scrape renders counters held in memory and the latest
gauge read (no Redis call), a few milliseconds every scrape interval. It binds to loopback
unless ``ROUTEQ_METRICS_HOST`` says otherwise, since the page lists models, rules and budgets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.metrics import Metrics, PrometheusMetrics
from worker.metrics_gauges import GaugeReader
from worker.settings import MetricsSettings

log = logging.getLogger("routeq.metrics")


class MetricsError(RuntimeError):
    """The metrics endpoint cannot be served (the port is taken, the host is not ours)."""


@dataclass
class MetricsServer:
    """A running endpoint (``port`` is the one bound: useful with port 0), or none (port None)."""

    host: str | None = None
    port: int | None = None
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _refresh: asyncio.Task[None] | None = field(default=None, repr=False)

    async def aclose(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        if self._runner is not None:
            await self._runner.cleanup()


async def start_metrics(
    metrics: Metrics,
    settings: MetricsSettings,
    *,
    slots: Callable[[], tuple[int, int]],
    reader: GaugeReader | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` and start the gauge refresh; with metrics off, a server that does nothing.

    ``slots()`` gives this worker's (slots in use, total); ``reader`` reads the shared state.
    Raises MetricsError when the address cannot be bound.
    """
    if not isinstance(metrics, PrometheusMetrics) or settings.port is None:
        return MetricsServer()
    metrics.set_slots(slots)
    registry = metrics.registry

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        why = exc.strerror or exc
        raise MetricsError(f"cannot serve metrics on {settings.host}:{settings.port}: {why}") from None
    port = _bound_port(runner, settings.port)
    refresh = asyncio.create_task(_refresh(metrics, reader, settings.refresh_s)) if reader else None
    log.info("metrics on http://%s:%d/metrics", settings.host, port)
    return MetricsServer(settings.host, port, runner, refresh)


async def _refresh(metrics: PrometheusMetrics, reader: GaugeReader, every_s: float) -> None:
    failing = False
    while True:
        try:
            async with asyncio.timeout(max(1.0, every_s)):
                metrics.set_gauges(await reader.read())
            if failing:
                log.info("metrics gauges readable again")
            failing = False
        except Exception as exc:  # Redis down or slow: keep the last read (its age shows it)
            if not failing:
                log.warning("metrics gauges not refreshed: %s", exc or type(exc).__name__)
            failing = True
        await asyncio.sleep(every_s)


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked
