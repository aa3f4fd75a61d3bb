"""A worker's view of the shared breaker: each verdict kept for up to a second.

Reading every chain's circuits from Redis before each call cost a round trip per job (8.5% of a
worker's CPU at a thousand jobs a second). A verdict rarely changes, so it is kept for
``ttl_s`` (1 s), less when it is due to change sooner (a cooldown ending, a probe lease
running out), and one read in flight serves every job that asks meanwhile. The price, stated in
the README: a circuit opened by another worker reaches this one up to ``ttl_s`` late. Outcomes
this worker records update its own view at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from worker.health.breaker import AccountBlock, Circuit, ModelHealth, judge
from worker.openrouter.models import Attempt

TTL_S = 1.0


@dataclass(frozen=True)
class _Held:
    reason: str | None
    until: float  # monotonic


class HealthCache:
    def __init__(
        self, health: ModelHealth, *, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.health = health
        self.ttl_s = ttl_s
        self._clock = clock
        self._models: dict[str, _Held] = {}
        self._block: tuple[AccountBlock | None, float] = (None, 0.0)
        self._reads: dict[str, asyncio.Future[None]] = {}

    async def gate(self, chain: Sequence[str]) -> tuple[AccountBlock | None, dict[str, str | None]]:
        """The account block in force (if any) and, per model, a reason to skip it (None: call it)."""
        now = self._clock()
        stale = [m for m in dict.fromkeys(chain) if self._fresh(m, now) is None]
        block_stale = self._block[1] <= now
        waits = {self._reads[m] for m in stale if m in self._reads}
        mine = [m for m in stale if m not in self._reads]
        read_block = block_stale and "" not in self._reads
        if block_stale and not read_block:
            waits.add(self._reads[""])
        direct: dict[str, Circuit] = {}
        if mine or read_block:
            direct = await self._read(mine, with_block=read_block)
        if waits:
            await asyncio.gather(*waits)
        reasons: dict[str, str | None] = {}
        for m in chain:
            if m in direct:  # this call's own read: a probe it claimed is its to make
                reasons[m] = direct[m].reason
            else:
                held = self._models.get(m)
                reasons[m] = held.reason if held is not None else None
        return self._block[0], reasons

    async def record(self, attempt: Attempt) -> None:
        """Record upstream (the client's ``on_attempt`` hook) and forget verdicts it may change:
        a failure's models (a count grew, a circuit may open) and a probe's model."""
        await self.health.record(attempt)
        verdict = judge(attempt)
        if verdict.account_error is not None:
            self._block = (None, 0.0)
        for model in verdict.failed:
            self._models.pop(model, None)
        for model in verdict.succeeded:
            held = self._models.get(model)
            if held is not None and held.reason is not None:
                self._models.pop(model, None)

    def _fresh(self, model: str, now: float) -> _Held | None:
        held = self._models.get(model)
        return held if held is not None and held.until > now else None

    async def _read(self, models: list[str], *, with_block: bool) -> dict[str, Circuit]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for m in models:
            self._reads[m] = done
        if with_block:
            self._reads[""] = done
        try:
            block, circuits = await self.health.gate(models, account=with_block)
            now = self._clock()
            for m in models:
                self._models[m] = self._held(circuits[m], now)
            if with_block:
                self._block = (block, now + self.ttl_s)
            return circuits
        finally:
            for m in models:
                self._reads.pop(m, None)
            if with_block:
                self._reads.pop("", None)
            done.set_result(None)

    def _held(self, circuit: Circuit, now: float) -> _Held:
        if circuit.reason is None and circuit.stands_ms:
            # This worker holds the half-open probe: its own other jobs skip the model meanwhile.
            reason = "circuit half-open: this worker is probing it"
            return _Held(reason, now + min(self.ttl_s, circuit.stands_ms / 1000))
        if circuit.reason is None:
            return _Held(None, now + self.ttl_s)
        return _Held(circuit.reason, now + min(self.ttl_s, max(circuit.stands_ms, 1) / 1000))
