"""The workers' periodic catalog sync: one worker per period, fleet-wide, under one Redis lease.

Every worker runs a :class:`CatalogRefresher`, but only one syncs per period: the lock
``catalog:lock`` is taken with ``SET NX PX period`` and is NOT released after the sync, so it
doubles as the fleet's schedule: while it lives no other worker syncs, and when it expires the
first worker to take it syncs next. The others sleep until it expires (its PTTL) instead of
polling. A sync that failed or was judged suspicious shortens the lease to ``retry_s``, so a
passing upstream problem is retried sooner than the next period.

Redis or network trouble only delays the next try: it is logged, never raised. Swapping the new
catalog into the worker (and recompiling the rules against it) is not done here: the worker
watches ``catalog:active`` (claims and the ``catalog:changed`` channel, ``worker/reload.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from producer_client.cancel import raise_if_cancelled
from producer_client.envvars import env_float
from worker.catalog import CatalogError
from worker.catalog_store import CatalogStore
from worker.catalog_sync import SyncReport, sync
from worker.openrouter.settings import OpenRouterSettings

log = logging.getLogger("routeq.catalog")

#: Called with every report of a sync this worker ran (for logs, metrics or tests).
OnReport = Callable[[SyncReport], Awaitable[None]]


@dataclass(frozen=True)
class RefreshSettings:
    """``refresh_s``: the fleet-wide sync period (0 turns the refresh off); ``retry_s``: how soon
    a failed or suspicious sync is tried again (at most ``refresh_s``)."""

    refresh_s: float = 3600.0
    retry_s: float = 300.0

    def __post_init__(self) -> None:
        if self.refresh_s < 0 or self.retry_s <= 0:
            raise ValueError("refresh_s must be >= 0 and retry_s > 0")

    @property
    def enabled(self) -> bool:
        return self.refresh_s > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RefreshSettings:
        """``ROUTEQ_CATALOG_REFRESH_S`` (default 3600; 0 = never sync from a worker)."""
        refresh = env_float(env, "ROUTEQ_CATALOG_REFRESH_S", cls.refresh_s, low=0)
        return cls(refresh_s=refresh, retry_s=min(cls.retry_s, refresh) if refresh > 0 else cls.retry_s)


class CatalogRefresher:
    def __init__(
        self,
        store: CatalogStore,
        openrouter: OpenRouterSettings,
        settings: RefreshSettings | None = None,
        *,
        on_report: OnReport | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.store = store
        self.openrouter = openrouter
        self.settings = settings if settings is not None else RefreshSettings.from_env()
        self.on_report = on_report
        self.transport = transport
        self.last: SyncReport | None = None  # the last sync this worker ran

    async def run(self) -> None:
        """Sync whenever the fleet's lease is free, until cancelled; never raises otherwise."""
        if not self.settings.enabled:
            return
        while True:
            raise_if_cancelled()
            try:
                await self.try_once()
                delay = await self.next_try_s()
            except (RedisError, OSError, CatalogError) as exc:
                log.warning("catalog refresh: %s; trying again in %gs", _reason(exc), self.settings.retry_s)
                delay = self.settings.retry_s
            except Exception:  # a bug must not take the worker down with it: log it loudly, go on
                log.exception("catalog refresh failed; trying again in %gs", self.settings.retry_s)
                delay = self.settings.retry_s
            await asyncio.sleep(delay + random.uniform(0, min(1.0, delay * 0.05)))

    async def try_once(self) -> SyncReport | None:
        """Take the lease and sync; None when another worker holds it (synced this period)."""
        lease = Lock(self.store.redis, self.store.keys.catalog_lock, timeout=self.settings.refresh_s,
                     blocking=False, thread_local=False)
        if not await lease.acquire(token=secrets.token_hex(8)):  # SET NX PX period
            return None
        try:
            report = await sync(self.store, self.openrouter, transport=self.transport)
        except (RedisError, OSError, CatalogError):  # retry sooner than a period (best effort)
            with contextlib.suppress(RedisError, OSError):
                await self._shorten(lease)
            raise
        self.last = report
        if not report.ok:
            await self._shorten(lease)
            log.warning("catalog sync %s: %s (active version %s)", report.outcome, report.why, report.version)
        elif report.stored:
            log.info("catalog version %s stored: %d models, %d refused", report.version, report.models,
                     len(report.refused))
        if self.on_report is not None:
            await self.on_report(report)
        return report

    async def next_try_s(self) -> float:
        """Seconds until the lease expires (capped at the period; a little when it is gone)."""
        pttl: int = await self.store.redis.pttl(self.store.keys.catalog_lock)
        if pttl == -1:  # set without expiry (by hand): do not wait forever, nor spin
            return self.settings.refresh_s
        return max(0.01, min(pttl / 1000, self.settings.refresh_s))

    async def _shorten(self, lease: Lock) -> None:
        """Let the next try come after ``retry_s`` instead of a full period (only our own lease:
        the extension is a compare-and-set on the token)."""
        with contextlib.suppress(LockError):  # it expired during the sync: maybe someone else's now
            await lease.extend(min(self.settings.retry_s, self.settings.refresh_s), replace_ttl=True)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
