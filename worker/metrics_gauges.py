"""The gauges of shared state, read from Redis in the background for the metrics endpoint.

A scrape must never wait on Redis and a job must never pay for a gauge, so a task reads these
every ``ROUTEQ_METRICS_REFRESH_S`` and the scrape shows the latest read (with its age). Every read
is a fixed number of pipelined round trips over keys the worker already knows: no SCAN, which on
a Redis holding a day of results would walk millions of keys on every refresh of every worker.
So the budget lines are the ones this worker has charged (``budgets``) and the circuits those of
the models its rules use or it has called (``models``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.budget import BudgetState
from worker.health import ModelHealth
from worker.metrics import GaugeSnapshot
from worker.observe.queues import read_queues


class GaugeReader:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        queues: Sequence[str],
        health: ModelHealth,
        *,
        models: Callable[[], Iterable[str]] = tuple,
        budgets: Callable[[], Iterable[BudgetState]] = tuple,
    ) -> None:
        """``models()``: model ids whose circuits to show; ``budgets()``: the budget counters this
        worker knows (their spend is re-read here; name, scope, window and limit are kept)."""
        self.redis = redis
        self.keys = keys
        self.queues = tuple(queues)
        self.health = health
        self.models = models
        self.budgets = budgets

    async def read(self) -> GaugeSnapshot:
        now = time.time()
        models = sorted(set(self.models()))
        budgets = list({b.key: b for b in self.budgets()}.values())
        async with self.redis.pipeline(transaction=False) as pipe:
            for model in models:
                pipe.hmget(self.health.key(model), ["state", "until"])
            for b in budgets:
                pipe.hmget(b.key, ["spent", "reserved"])
            rows: list[Any] = await pipe.execute()
        breakers = {m: _circuit(row, now) for m, row in zip(models, rows, strict=False)}
        fresh = [replace(b, spent_nano=int(spent or 0), reserved_nano=int(reserved or 0))
                 for b, (spent, reserved) in zip(budgets, rows[len(models):], strict=True)]
        return GaugeSnapshot(
            queues=tuple(await read_queues(self.redis, self.keys, self.queues, int(now * 1000))),
            budgets=tuple(fresh),
            breakers=breakers,
            account_blocked=await self.health.account_block() is not None,
            read_at=now,
        )


def _circuit(row: Sequence[Any], now: float) -> str:
    """The breaker's states as ``ModelHealth.status`` names them (open past its cooldown: half-open)."""
    state, until = row
    if _text(state) != "open":
        return "closed"
    return "open" if now * 1000 < int(until or 0) else "half_open"


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")
