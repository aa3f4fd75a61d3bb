"""Everything ``routeq status`` shows, read in a handful of round trips.

Queues, flow, workers and the active rules cost O(queues + workers); circuits, account blocks
and budget lines come from the breaker's and the ledger's own index sets (``Keys.circuits``,
``account_blocks``, ``budget_lines``): O(circuits + blocks + counters), never a SCAN.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.budget import BudgetState
from worker.budget.ledger import BudgetLedger
from worker.health import AccountBlock, ModelHealth, ModelStatus
from worker.observe.flow import WINDOW_MS, DecisionCounter, Flow, last_minute, waiting_since
from worker.observe.queues import QueueState, queue_names, read_queues
from worker.observe.workers import WorkerView, read_workers


@dataclass(frozen=True)
class ActiveRules:
    number: int
    hash: str | None
    message: str | None
    created_ms: int | None
    by: str | None


@dataclass(frozen=True)
class FleetStatus:
    at_ms: int
    prefix: str
    rules: ActiveRules | None  # None: no version active, workers use their rules files
    queues: list[QueueState]
    flow: Flow
    workers: list[WorkerView]
    circuits: list[ModelStatus]
    account_blocks: dict[str, AccountBlock]
    budgets: list[BudgetState]

    def as_dict(self) -> dict[str, Any]:
        return {
            "at_ms": self.at_ms,
            "prefix": self.prefix,
            "rules_active": asdict(self.rules) if self.rules else None,
            "queues": [
                {**q.as_dict(), "in_per_min": self.flow.in_per_min.get(q.name, 0.0),
                 "out_per_min": self.flow.out_per_min.get(q.name, 0.0)}
                for q in self.queues
            ],
            "flow": self.flow.as_dict(),
            "workers": [w.as_dict(self.at_ms) for w in self.workers],
            "circuits": [asdict(c) for c in self.circuits],
            "account_blocks": [{"account": a, **asdict(b)} for a, b in self.account_blocks.items()],
            "budgets": [{**b.as_dict(), "used_pct": round(b.used_ratio * 100, 1)} for b in self.budgets],
        }


async def read_active_rules(redis: Redis, keys: Keys) -> ActiveRules | None:
    raw = await redis.get(keys.rules_active)
    if raw is None:
        return None
    number = int(raw)
    fields = ["hash", "message", "created_ms", "by"]
    h, message, created, by = await redis.hmget(keys.rules_version(number), fields)  # type: ignore[misc]
    return ActiveRules(number, _opt(h), _opt(message), int(created) if created else None, _opt(by))


async def fleet_status(
    redis: Redis, keys: Keys, *, queues: Sequence[str] = (), now_ms: int | None = None
) -> FleetStatus:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    workers = await read_workers(redis, keys)
    names = queue_names(queues, *(w.queues for w in workers))
    queue_states = await read_queues(redis, keys, names, now_ms)
    waiting = await waiting_since(redis, keys, names, now_ms - WINDOW_MS, now_ms)
    flow = await last_minute(DecisionCounter(redis, keys), waiting, now_ms)
    health = ModelHealth(redis, prefix=keys.prefix)
    ledger = BudgetLedger(redis, prefix=keys.prefix)
    return FleetStatus(
        at_ms=now_ms,
        prefix=keys.prefix,
        rules=await read_active_rules(redis, keys),
        queues=queue_states,
        flow=flow,
        workers=workers,
        circuits=await health.status(),
        account_blocks=await health.blocks(),
        budgets=await ledger.status_all(),
    )


def _opt(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value
