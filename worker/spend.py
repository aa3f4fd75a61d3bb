"""Budgets inside a job: what rules see, the reservation before the call, what the result charges.

Each try of a job reserves under ``{job_id}#{try}``; the charge is settled by the script that
writes the result (no round trip of its own). A try whose worker died keeps its reservation until
the lease ends, then a reclaim charges it in full; the re-run reserves afresh. So a job that runs
twice is charged once per upstream charge, never less, and spend + reservations never pass a cap.

Round trips: the reservation is one; the counters the rules read come from that reply, so a job
only reads them first when this worker has not seen them in the last second (``VIEW_TTL_S``). If
the fresh counters would route the job differently, it re-decides and swaps its reservation.
A job no budget applies to gets an empty :class:`Hold` without any call: the same steps run,
and they do nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any

from producer_client.money import nano_to_usd
from worker.budget import (
    BudgetDef,
    BudgetLine,
    BudgetState,
    Denial,
    applicable,
    budget_view,
    worst_case_nano,
)
from worker.budget.ledger import BudgetLedger
from worker.catalog import Catalog, ModelInfo

VIEW_TTL_S = 1.0
_SEEN_MAX = 10_000  # counters remembered per worker; past it the memory starts over


def reservation_id(job_id: str, job_try: int) -> str:
    return f"{job_id}#{job_try}"


@dataclass(frozen=True)
class Hold:
    """What one try holds: its reservation id, the counters, the worst case of its first attempt,
    and the total held.

    ``held_nano`` grows past ``worst_nano`` by one worst case per attempt whose outcome was
    unknown (it may have been billed) and that was retried, and by each cascade step's worst case.
    """

    rid: str
    lines: tuple[BudgetLine, ...] = ()
    worst_nano: int = 0
    held_nano: int = 0
    states: tuple[BudgetState, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.lines)

    def fragments(self) -> list[str]:
        """JSON openings of each counter's result entry; the finish script adds the amounts."""
        import orjson  # local: only jobs with budgets get here

        return [
            orjson.dumps({"name": line.name, "scope": line.scope, "window": line.window}).decode()[:-1]
            for line in self.lines
        ]


@dataclass(frozen=True)
class AlreadyCharged:
    """This try's reservation was already settled or reclaimed: another call would be spend that
    nobody reserved."""

    state: str

    def message(self) -> str:
        return f"this try's reservation is {self.state}; resubmit under a new job id to run it again"


@dataclass(frozen=True)
class Denied:
    """The reservation did not fit: which budget, and what the job needed."""

    denial: Denial
    needed_nano: int
    states: tuple[BudgetState, ...] = ()

    def message(self) -> str:
        d = self.denial
        return (
            f"budget {d.name!r} cannot cover this job: limit {nano_to_usd(d.limit_nano)} USD, "
            f"remaining {nano_to_usd(d.remaining_nano)} USD, "
            f"job needs up to {nano_to_usd(self.needed_nano)} USD"
        )

    def details(self) -> dict[str, str]:
        d = self.denial
        return {"budget": d.name, "limit_usd": nano_to_usd(d.limit_nano),
                "remaining_usd": nano_to_usd(d.remaining_nano), "needed_usd": nano_to_usd(self.needed_nano)}


class Spend:
    """Budgets from the rules in force, enforced by the Redis ledger."""

    def __init__(self, ledger: BudgetLedger, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self._clock = clock
        self._seen: dict[str, tuple[BudgetState, float]] = {}

    def lines(
        self, budgets: Sequence[BudgetDef], timezone: tzinfo, context: Mapping[str, Any], now: datetime
    ) -> tuple[BudgetLine, ...]:
        if not budgets:
            return ()
        return applicable(budgets, context, now, timezone, prefix=self.ledger.prefix)

    async def view(self, lines: Sequence[BudgetLine]) -> Mapping[str, Any]:
        """What rules see of these counters: as last seen if under a second old, else read now."""
        if not lines:
            return {}
        now = self._clock()
        held = [self._seen.get(line.key) for line in lines]
        if all(h is not None and now - h[1] < VIEW_TTL_S for h in held):
            return budget_view([h[0] for h in held if h is not None])
        states = await self.ledger.state(lines)
        self.remember(states)
        return budget_view(states)

    def fresh_view(self, hold: Hold) -> Mapping[str, Any]:
        """The view a reservation's reply gives: the counters just before this job's own hold."""
        before = [replace(s, reserved_nano=s.reserved_nano - hold.held_nano)
                  for s in hold.states]
        return budget_view(before)

    async def reserve(
        self, rid: str, lines: tuple[BudgetLine, ...], worst_nano: int, *, replace: bool = False
    ) -> Hold | Denied | AlreadyCharged:
        """A Hold (empty when no budget applies: no call), a Denied (a budget is short), or
        AlreadyCharged when this try was settled or reclaimed before."""
        if not lines:
            return Hold(rid)
        held = await self.ledger.reserve(rid, lines, worst_nano, replace=replace)
        self.remember(held.lines)
        if held.denied is not None:
            return Denied(held.denied, worst_nano, held.lines)
        if not held.ok:
            return AlreadyCharged(held.state)
        return Hold(rid, lines, worst_nano, worst_nano, held.lines)

    async def grow(self, hold: Hold, amount_nano: int) -> Hold | None:
        """Hold ``amount_nano`` more: the worst case of a retry after an attempt that may have been
        billed, or of a cascade step. None when a budget cannot take it (the job must stop calling)."""
        grown = await self.ledger.add(hold.rid, hold.lines, amount_nano)
        self.remember(grown.lines)
        if not grown.ok:
            return None
        return replace(hold, held_nano=hold.held_nano + amount_nano, states=grown.lines)

    def known_states(self) -> list[BudgetState]:
        """The counters this worker saw last (for the budget gauges; no Redis read)."""
        return [s for s, _ in self._seen.values()]

    def remember(self, states: Sequence[BudgetState]) -> None:
        """Counters seen in a script's reply (reserve, finish): rules read these for a second."""
        if len(self._seen) > _SEEN_MAX:
            self._seen.clear()
        now = self._clock()
        for s in states:
            self._seen[s.key] = (s, now)


def worst_case(catalog: Catalog, chain: Sequence[str], prompt_tokens: int, max_tokens: int) -> int:
    """The most one attempt over ``chain`` can cost; an unknown model is priced as the dearest
    model known (never free)."""
    return worst_case_nano(prompt_tokens, max_tokens, [priced(catalog, m) for m in chain])


def priced(catalog: Catalog, model: str) -> ModelInfo:
    """``model``'s prices; for a model the catalog does not know or cannot price (a router whose
    price depends on what it picks), the dearest known prices: an unknown price is never free."""
    info = catalog.get(model)
    if info is not None and min(info.prompt_price, info.completion_price, info.request_price) >= 0:
        return info
    return catalog.dearest()
