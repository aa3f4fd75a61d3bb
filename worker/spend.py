"""Budget enforcement inside a job: what rules see, reserve before the call, settle after.

Each try of a job reserves under ``{job_id}#{try}``. A try whose worker died keeps its
reservation until the lease ends, then a reclaim charges it in full (it may have been billed
upstream); the re-run reserves afresh. So a job that runs twice is charged once per upstream
charge, never less, and spend + reservations never pass a cap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from producer_client.contract import BudgetLineInfo
from producer_client.money import nano_to_usd
from worker.budget import (
    BudgetDef,
    BudgetLine,
    BudgetState,
    Reservation,
    applicable,
    budget_view,
    worst_case_nano,
)
from worker.budget.ledger import BudgetLedger
from worker.catalog import Catalog, ModelInfo

log = logging.getLogger("routeq.budget")


def reservation_id(job_id: str, job_try: int) -> str:
    return f"{job_id}#{job_try}"


@dataclass(frozen=True)
class BudgetCheck:
    """The budget lines a job is subject to and what the rules see of them."""

    lines: tuple[BudgetLine, ...]
    computed: Mapping[str, Any]


@dataclass(frozen=True)
class SpendControl:
    budgets: tuple[BudgetDef, ...]
    ledger: BudgetLedger
    catalog: Catalog
    timezone: Any
    prefix: str = "routeq:"

    async def check(self, context: Mapping[str, Any], now: datetime) -> BudgetCheck:
        """One round trip: the current counters of every budget this job is subject to."""
        lines = applicable(self.budgets, context, now, self.timezone, prefix=self.prefix)
        if not lines:
            return BudgetCheck((), {})
        return BudgetCheck(lines, budget_view(await self.ledger.state(lines)))

    def worst_case(self, chain: Sequence[str], prompt_tokens: int, max_tokens: int) -> int:
        return worst_case_nano(prompt_tokens, max_tokens, [self._prices(m) for m in chain])

    async def reserve(self, rid: str, check: BudgetCheck, amount_nano: int) -> Reservation:
        return await self.ledger.reserve(rid, check.lines, amount_nano)

    async def settle(self, rid: str, actual_nano: int) -> list[BudgetLineInfo]:
        """Charge the actual cost; shielded so a cancellation cannot leave it half done."""
        settlement = await asyncio.shield(self.ledger.settle(rid, actual_nano))
        if settlement.overrun_nano:
            log.warning("reservation %s overran its worst case by %s USD", rid,
                        nano_to_usd(settlement.overrun_nano))
        return lines_info(settlement.lines)

    async def release(self, rid: str) -> list[BudgetLineInfo]:
        return await self.settle(rid, 0)

    def _prices(self, model: str) -> ModelInfo:
        """A model's prices; an unknown model is priced as the dearest model known (never free)."""
        info = self.catalog.get(model)
        if info is not None and min(info.prompt_price, info.completion_price, info.request_price) >= 0:
            return info
        return self.catalog.dearest()


def lines_info(states: Sequence[BudgetState]) -> list[BudgetLineInfo]:
    return [BudgetLineInfo(**s.as_dict()) for s in states]
