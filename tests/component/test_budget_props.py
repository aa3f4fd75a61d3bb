"""Property test on fakeredis: any interleaving of reserve / settle / release / reclaim over
several jobs and 1-3 budgets keeps the Redis counters equal to a plain Python model, and never
lets spent + reserved exceed a limit (with actual <= reserved, as generated here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.budget import BudgetDef, BudgetLine, applicable, parse_budgets
from worker.budget.ledger import BudgetLedger

JOBS = [f"j{i}" for i in range(6)]


@dataclass(frozen=True)
class Reserve:
    job: str
    amount: int
    short_lease: bool
    twice: bool


@dataclass(frozen=True)
class Settle:
    job: str
    fraction: float  # actual = floor(reserved * fraction)
    twice: bool


@dataclass(frozen=True)
class Release:
    job: str


@dataclass(frozen=True)
class Reclaim:
    pass


Op = Reserve | Settle | Release | Reclaim

jobs = st.sampled_from(JOBS)
ops = st.one_of(
    st.builds(Reserve, jobs, st.integers(0, 250), st.booleans(), st.booleans()),
    st.builds(Settle, jobs, st.floats(0, 1), st.booleans()),
    st.builds(Release, jobs),
    st.just(Reclaim()),
)
budget_specs = st.lists(
    st.tuples(st.sampled_from(["global", "user", "tenant"]), st.integers(1, 500)), min_size=1, max_size=3
)
contexts = st.fixed_dictionaries(
    {"user_id": st.sampled_from(["u0", "u1"]), "tenant": st.sampled_from(["t0", "t1", None])}
)


@dataclass
class Held:
    amount: int
    keys: tuple[str, ...]
    short: bool
    state: str = "open"
    charged: int = 0


@dataclass
class Model:
    limits: dict[str, int] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, int] = field(default_factory=dict)
    held: dict[str, Held] = field(default_factory=dict)

    def close(self, job: str, charged: int, state: str) -> None:
        h = self.held[job]
        for key in h.keys:
            self.reserved[key] -= h.amount
            self.spent[key] += charged
        h.state, h.charged = state, charged


class Run:
    def __init__(self, budgets: tuple[BudgetDef, ...], job_contexts: dict[str, dict[str, Any]]) -> None:
        self.redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        self.ledger = BudgetLedger(self.redis)
        self.lines: dict[str, tuple[BudgetLine, ...]] = {
            job: applicable(budgets, ctx, datetime.now(UTC)) for job, ctx in job_contexts.items()
        }
        self.model = Model()
        for lines in self.lines.values():
            for line in lines:
                self.model.limits[line.key] = line.limit_nano
                self.model.spent.setdefault(line.key, 0)
                self.model.reserved.setdefault(line.key, 0)

    async def apply(self, op: Op) -> None:
        m = self.model
        if isinstance(op, Reserve):
            await self.reserve(op)
        elif isinstance(op, Settle | Release):
            held = m.held.get(op.job)
            fraction = op.fraction if isinstance(op, Settle) else 0.0
            actual = int(held.amount * fraction) if held else 7
            result = await self.ledger.settle(op.job, actual)
            if held is None:
                assert result.state == "none"
            elif held.state == "open":
                m.close(op.job, actual, "settled")
                assert (result.state, result.replayed, result.charged_nano) == ("settled", False, actual)
            else:
                assert result.replayed and result.state == held.state and result.charged_nano == held.charged
            if isinstance(op, Settle) and op.twice:
                again = await self.ledger.settle(op.job, actual)
                assert again.charged_nano == result.charged_nano and again.state == result.state
                assert again.replayed or again.state == "none"
        else:
            expired = {job for job, h in m.held.items() if h.state == "open" and h.short}
            reclaimed = await self.ledger.reclaim_expired(now=time.time() + 1)
            assert set(reclaimed) == expired and len(reclaimed) == len(expired)
            for job in expired:
                m.close(job, m.held[job].amount, "reclaimed")

    async def reserve(self, op: Reserve) -> None:
        m = self.model
        lines = self.lines[op.job]
        lease = 0.001 if op.short_lease else 1000.0
        result = await self.ledger.reserve(op.job, lines, op.amount, lease_s=lease)
        held = m.held.get(op.job)
        if held is not None:
            assert result.replayed and result.state == held.state and result.amount_nano == held.amount
            assert result.ok == (held.state == "open")
        elif not lines:
            assert result.state == "none"
        else:
            short = [
                line
                for line in lines
                if op.amount > 0 and m.spent[line.key] + m.reserved[line.key] + op.amount > line.limit_nano
            ]
            if short:
                first = short[0]
                remaining = max(0, first.limit_nano - m.spent[first.key] - m.reserved[first.key])
                assert not result.ok and result.denied is not None
                assert (result.denied.key, result.denied.remaining_nano) == (first.key, remaining)
            else:
                assert result.ok and not result.replayed
                for line in lines:
                    m.reserved[line.key] += op.amount
                m.held[op.job] = Held(op.amount, tuple(line.key for line in lines), op.short_lease)
        if op.twice:
            again = await self.ledger.reserve(op.job, lines, op.amount + 1, lease_s=lease)
            assert again.amount_nano == (m.held[op.job].amount if op.job in m.held else op.amount + 1)
            if op.job not in m.held and lines:  # denied twice or now fits: keep the model honest
                assert not again.ok
            elif op.job in m.held:
                assert again.replayed

    async def check(self) -> None:
        m = self.model
        for key, limit in m.limits.items():
            spent, reserved = await cast(Awaitable[list[Any]], self.redis.hmget(key, ["spent", "reserved"]))
            assert (int(spent or 0), int(reserved or 0)) == (m.spent[key], m.reserved[key]), key
            assert m.spent[key] + m.reserved[key] <= limit


async def scenario(
    budgets: tuple[BudgetDef, ...], job_contexts: dict[str, dict[str, Any]], plan: list[Op]
) -> None:
    run = Run(budgets, job_contexts)
    try:
        for op in plan:
            await run.apply(op)
            await run.check()
        for job in JOBS:  # everything settles eventually
            await run.apply(Release(job))
        await run.check()
        assert all(v == 0 for v in run.model.reserved.values())
        assert await run.redis.zcard(run.ledger.leases_key) == 0
    finally:
        await run.redis.aclose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budget_specs, st.fixed_dictionaries({job: contexts for job in JOBS}), st.lists(ops, max_size=40))
def test_ledger_matches_model_under_any_interleaving(
    specs: list[tuple[str, int]], job_contexts: dict[str, dict[str, Any]], plan: list[Op]
) -> None:
    raw = [
        {"name": f"b{i}", "scope": scope, "limit_usd": f"0.{limit:09d}", "window": "day"}
        for i, (scope, limit) in enumerate(specs)
    ]
    asyncio.run(scenario(parse_budgets(raw), job_contexts, plan))
