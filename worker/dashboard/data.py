"""What the dashboard page shows, as one JSON document, from the rollups and the live state.

Sources, and why each:

- jobs per minute by status: the decision stream (one entry per finished job), counted inside
  Redis and read incrementally, at a bounded cost per refresh (``worker/dashboard/minutes.py``);
- spend by model, routing mix by rule and latency percentiles per hour: the hourly rollups
  (``worker/analytics/rollups.py`` sums them), re-read at most every ``ROLLUP_TTL_S``;
- experiment arms: the rollups' ``variant`` dimension over the last week;
- budget lines: the ledger's listing (its index set, no SCAN; cached like the rollups);
- workers and queues: the heartbeats and queue zsets, fresh on every refresh.

Amounts of money are decimal strings (exact) where they are shown as numbers, and floats only in
the chart series, which are pictures.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from redis.asyncio import Redis

from producer_client.keys import Keys
from producer_client.money import NANO_PER_USD, nano_to_usd
from worker.analytics.rollups import Aggregator, Metrics, RollupReader, hours_in
from worker.budget.ledger import BudgetLedger
from worker.dashboard.minutes import MinuteCounts
from worker.observe.flow import DecisionCounter
from worker.observe.queues import queue_names, read_queues
from worker.observe.workers import read_workers
from worker.rollup_format import NONE, OTHER, hour_start

HOURS: Final = 24  # the hourly charts' span
EXPERIMENT_HOURS: Final = 7 * 24
ROLLUP_TTL_S: Final = 30.0  # the hourly parts change slowly: re-read them at most this often
TOP: Final = 7  # series per hourly chart; the rest are summed as "other"


class DashboardData:
    def __init__(self, redis: Redis, keys: Keys, *, clock: Any = time.time) -> None:
        self.redis = redis
        self.keys = keys
        self._clock = clock
        self._minutes = MinuteCounts(DecisionCounter(redis, keys))
        self._slow: dict[str, Any] = {}
        self._slow_at = -1e9
        self._lock = asyncio.Lock()

    async def snapshot(self) -> dict[str, Any]:
        """The page's document; concurrent callers (several open pages) share one read."""
        async with self._lock:
            now = self._clock()
            now_ms = int(now * 1000)
            if now - self._slow_at >= ROLLUP_TTL_S:
                self._slow = await self._hourly(now)
                self._slow_at = now
            workers = await read_workers(self.redis, self.keys)
            names = queue_names(*(w.queues for w in workers))
            queues = await read_queues(self.redis, self.keys, names, now_ms)
            return {
                "at_ms": now_ms,
                "prefix": self.keys.prefix,
                "minutes": await self._minutes.refresh(now_ms),
                **self._slow,
                "queues": [q.as_dict() for q in queues],
                "workers": [w.as_dict(now_ms) for w in workers],
            }

    # -- per hour, from the rollups ---------------------------------------------------------------

    async def _hourly(self, now: float) -> dict[str, Any]:
        until = datetime.fromtimestamp(now, UTC)
        hours = hours_in(until - timedelta(hours=HOURS - 1), until)
        by_model, by_rule, overall = [], [], []
        async with self.redis.pipeline(transaction=False) as pipe:
            for hour in hours:
                pipe.hgetall(self.keys.rollup(hour))
            hashes = await pipe.execute()
        for hour, fields in zip(hours, hashes, strict=True):
            groups = {}
            for by in (("model",), ("rule",), ()):
                agg = Aggregator(by)
                if fields:
                    agg.add_hour(hour, fields)
                groups[by] = agg.groups()
            by_model.append({k[0]: v for k, v in groups[("model",)].items()})
            by_rule.append({k[0]: v for k, v in groups[("rule",)].items()})
            overall.append(groups[()].get((), Metrics()))
        spend = _top_series(by_model, lambda x: x.cost_nano)
        arms = await RollupReader(self.redis, self.keys).read(
            until - timedelta(hours=EXPERIMENT_HOURS), until, by=("variant",))
        total = Metrics()
        for x in overall:
            total = total + x
        return {
            "hours": {
                "t": [int(hour_start(h).timestamp()) for h in hours],
                "spend_usd_by_model": {k: [n / NANO_PER_USD for n in v] for k, v in spend.items()},
                "jobs_by_rule": _top_series(by_rule, lambda x: x.n),
                "latency_ms": {"p50": [x.latency_ms(0.5) for x in overall],
                               "p95": [x.latency_ms(0.95) for x in overall]},
            },
            "totals": {"jobs": total.n, "succeeded": total.succeeded, "fallbacks": total.fallbacks,
                       "spend_usd": nano_to_usd(total.cost_nano), "p95_ms": total.latency_ms(0.95)},
            "experiments": await self._arms(arms.groups),
            "budgets": await self._budgets(),
        }

    async def _arms(self, groups: Mapping[tuple[str, ...], Metrics]) -> list[dict[str, Any]]:
        arms = [(k[0], v) for k, v in groups.items() if k[0] not in (NONE, OTHER) and ":" in k[0]]
        if not arms:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, _ in arms:
                pipe.pfcount(self.keys.experiment_units(*name.split(":", 1)))
            units = await pipe.execute()
        out = []
        for (name, x), n_units in zip(arms, units, strict=True):
            experiment, variant = name.split(":", 1)
            cost = x.cost_per_job_nano()
            out.append({
                "experiment": experiment, "variant": variant, "jobs": x.n, "units": int(n_units),
                "success_rate": round(x.succeeded / x.n, 4) if x.n else None,
                "cost_per_job_usd": nano_to_usd(cost) if cost is not None else None,
                "p95_ms": x.latency_ms(0.95),
                "quality": x.quality.mean, "quality_n": x.qn,
            })
        return sorted(out, key=lambda a: (a["experiment"], a["variant"]))

    async def _budgets(self) -> list[dict[str, Any]]:
        states = await BudgetLedger(self.redis, prefix=self.keys.prefix).status_all()
        ranked = sorted(states, key=lambda s: -s.used_ratio)[:50]
        return [{**s.as_dict(), "used_pct": round(s.used_ratio * 100, 1)} for s in ranked]


def _top_series(per_hour: Sequence[Mapping[str, Metrics]], value: Any) -> dict[str, list[int]]:
    """One series per key, the ``TOP`` largest over the span; the others summed as ``other``."""
    totals: Counter[str] = Counter()
    for hour in per_hour:
        for key, x in hour.items():
            totals[key] += value(x)
    keep = [k for k, n in totals.most_common() if n][:TOP]
    series = {k: [value(h[k]) if k in h else 0 for h in per_hour] for k in keep}
    rest = [sum(value(x) for k, x in h.items() if k not in keep) for h in per_hour]
    if any(rest):
        series[OTHER] = [a + b for a, b in zip(series.get(OTHER, [0] * len(rest)), rest, strict=True)]
    return series
