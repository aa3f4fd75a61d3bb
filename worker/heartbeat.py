"""Each worker's heartbeat: a key of its own, refreshed every few seconds, gone three beats after
the worker stops.

arq has one health key per queue, shared by every worker (last writer wins) and deleted by any
worker's graceful shutdown, so it cannot tell who is alive. Here each worker writes
``{prefix}worker:{name}`` (JSON, expiring after three missed beats) and scores its name in
``{prefix}workers`` with the beat time, so ``routeq status`` lists live workers, shows one that
went silent as lost, and producers can tell whether anyone serves a queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from producer_client.cancel import raise_if_cancelled
from producer_client.keys import Keys

log = logging.getLogger("routeq.heartbeat")

MISSED_BEATS = 3
FORGET_AFTER_S = 86_400  # a lost worker stays listed this long


@dataclass(frozen=True)
class Beat:
    """The worker facts that do not change while it runs."""

    name: str
    queues: tuple[str, ...]
    slots: int
    interval_s: float
    version: str
    host: str = socket.gethostname()
    pid: int = os.getpid()


class Heartbeat:
    def __init__(
        self, redis: Redis, keys: Keys, beat: Beat, live: Callable[[], Mapping[str, Any]]
    ) -> None:
        """``live()`` gives the changing part: slots in use, jobs/s, versions, last error."""
        self.redis = redis
        self.keys = keys
        self.beat = beat
        self.live = live
        self.started_at = time.time()

    def document(self) -> dict[str, Any]:
        b = self.beat
        now = time.time()
        return {
            "name": b.name, "host": b.host, "pid": b.pid, "queues": list(b.queues), "slots": b.slots,
            "interval_s": b.interval_s, "version": b.version, "started_at": self.started_at,
            "uptime_s": round(now - self.started_at, 1), "beat_ms": int(now * 1000), **self.live(),
        }

    async def beat_once(self) -> None:
        doc = self.document()
        ttl_ms = int(self.beat.interval_s * MISSED_BEATS * 1000)
        async with self.redis.pipeline(transaction=True) as tx:
            tx.set(self.keys.worker(self.beat.name), orjson.dumps(doc), px=ttl_ms)
            tx.zadd(self.keys.workers, {self.beat.name: doc["beat_ms"]})
            tx.zremrangebyscore(self.keys.workers, "-inf", doc["beat_ms"] - FORGET_AFTER_S * 1000)
            await tx.execute()

    async def run(self) -> None:
        """Beat until cancelled; Redis trouble only delays the next beat."""
        while True:
            raise_if_cancelled()
            try:
                await self.beat_once()
            except (RedisError, OSError) as exc:
                log.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(self.beat.interval_s)

    async def stop(self) -> None:
        """A graceful stop says so at once instead of going silent (best effort, two seconds at
        most: a worker whose Redis is gone must still exit promptly)."""
        try:
            async with asyncio.timeout(2.0), self.redis.pipeline(transaction=True) as tx:
                tx.delete(self.keys.worker(self.beat.name))
                tx.zrem(self.keys.workers, self.beat.name)
                await tx.execute()
        except (RedisError, OSError, TimeoutError):
            pass
