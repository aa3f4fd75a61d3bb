"""Is anyone serving this queue? A waiting producer asks once, after a few seconds.

Workers keep a heartbeat document each (``{prefix}worker:{name}``, expiring after three missed
beats) and their names in ``{prefix}workers``. A producer that has waited ``warn_after_s`` for a
result reads them once; if no live worker serves the queue (no worker at all, a wrong
``REDIS_URL`` or prefix, a queue name nobody serves), it logs one warning saying so instead of
waiting silently forever.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from producer_client.keys import Keys

log = logging.getLogger("routeq.client")

WARN_AFTER_S = 5.0


@dataclass(frozen=True)
class LiveWorker:
    name: str
    queues: tuple[str, ...]
    beat_ms: int


class ServedCheck:
    """Reads the workers' heartbeats for producers (the worker writes them; see worker/heartbeat.py)."""

    def __init__(self, redis: Redis, keys: Keys, *, warn_after_s: float = WARN_AFTER_S) -> None:
        self.redis = redis
        self.keys = keys
        self.warn_after_s = warn_after_s

    async def live_workers(self) -> list[LiveWorker]:
        """Workers whose heartbeat has not expired, newest beat first."""
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in await self.redis.zrevrange(self.keys.workers, 0, 999)]
        if not names:
            return []
        docs = await self.redis.mget([self.keys.worker(n) for n in names])
        live = []
        for name, raw in zip(names, docs, strict=True):
            if raw is None:
                continue
            try:
                doc = orjson.loads(raw)
                live.append(LiveWorker(name, tuple(str(q) for q in doc.get("queues", ())),
                                       int(doc.get("beat_ms", 0))))
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                continue
        return live

    async def problem(self, queue: str) -> str | None:
        """Why nobody will run a job put on ``queue``, or None if a live worker serves it."""
        live = await self.live_workers()
        if any(queue in w.queues for w in live):
            return None
        where = f"prefix {self.keys.prefix!r}"
        if not live:
            return (f"no live routeq worker on this Redis under {where}: jobs on queue {queue!r} will "
                    "wait until one starts (check REDIS_URL and ROUTEQ_PREFIX)")
        served = sorted({q for w in live for q in w.queues})
        return (f"no live routeq worker serves queue {queue!r} under {where} "
                f"(live workers serve: {', '.join(served)}); jobs there will wait")

    def watch(self, queue: str) -> ServedWatch:
        return ServedWatch(self, queue, time.monotonic() + self.warn_after_s)


class ServedWatch:
    """One wait's check: asks once, after the grace period, and logs at most one warning."""

    def __init__(self, check: ServedCheck, queue: str, due: float) -> None:
        self._check = check
        self._queue = queue
        self._due = due
        self.warning: str | None = None

    async def check(self) -> None:
        if self._due <= 0 or time.monotonic() < self._due:
            return
        self._due = 0  # once per wait
        try:
            self.warning = await self._check.problem(self._queue)
        except RedisError:
            return  # the wait itself will report Redis problems
        if self.warning:
            log.warning("%s", self.warning)
