"""One job's path through a worker: validate → classify → route → filter → call → write.

Pure steps (rules, classification, eligibility) sit in their own modules; this one sequences
them and turns every way a job can end into exactly one result document. Budget reservation and
the shared circuit breaker plug in through the optional ``budget`` and ``health`` hooks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from producer_client.contract import (
    AttemptInfo,
    BudgetLineInfo,
    Job,
    Result,
    Routing,
    Skip,
    TraceItem,
    Usage,
)
from producer_client.errors import InvalidJob
from producer_client.jobs import parse_job
from producer_client.money import nano_to_usd
from worker.budget import Reservation
from worker.catalog import Catalog
from worker.classify import classified_context
from worker.eligibility import filter_chain, needs_of
from worker.health import ModelHealth
from worker.openrouter import ChatRequest, Completion, OpenRouterClient, UpstreamError
from worker.outcome import JobClock, Outcome
from worker.rules import Decision, RuleSet, thaw
from worker.serialization import INVALID_KEY
from worker.spend import BudgetCheck, SpendControl, lines_info, reservation_id
from worker.tokens import estimate_prompt_tokens

log = logging.getLogger("routeq.pipeline")

NO_BUDGET = BudgetCheck((), {})


@dataclass(frozen=True)
class JobInput:
    job_id: str
    payload: Any
    job_try: int = 1
    enqueued_at: float | None = None
    batch_id: str | None = None


@dataclass(frozen=True)
class Ran:
    """A finished run: its result, and the parsed job and its messages (None if it was rejected
    before parsing)."""

    result: Result
    job: Job | None = None
    messages: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Pipeline:
    rules: RuleSet
    catalog: Catalog
    client: OpenRouterClient
    upstream_budget_s: float = 115.0
    max_tries: int = 3
    spend: SpendControl | None = None
    health: ModelHealth | None = None

    async def run(self, inp: JobInput) -> Ran:
        """The job's result (never raises for a bad job or an upstream failure), with what it ran."""
        clock = JobClock(enqueued_at=inp.enqueued_at)
        meta = inp.payload.get("metadata") if isinstance(inp.payload, dict) else None
        out = Outcome(inp.job_id, inp.job_try, meta if isinstance(meta, dict) else {})
        if isinstance(inp.payload, dict) and INVALID_KEY in inp.payload:
            return Ran(out.rejected(clock, "invalid_job", str(inp.payload[INVALID_KEY])))
        try:
            job = parse_job(inp.payload if isinstance(inp.payload, dict) else {"payload": inp.payload})
        except InvalidJob as exc:
            return Ran(out.rejected(clock, "invalid_job", str(exc)))
        out = Outcome(inp.job_id, inp.job_try, dict(job.metadata))
        messages = [m.model_dump(exclude_none=True) for m in job.messages]
        if inp.job_try > self.max_tries:
            lost = out.failed(
                clock, "worker_lost",
                f"job started {inp.job_try} times without finishing (worker crashed or was killed); "
                f"giving up after {self.max_tries} tries",
            )
            return Ran(lost, job, messages)
        return Ran(await self._route_and_call(job, messages, out, clock), job, messages)

    async def _route_and_call(
        self, job: Job, messages: list[dict[str, Any]], out: Outcome, clock: JobClock
    ) -> Result:
        context, task_source = classified_context(job.context.model_dump(), messages)
        now = datetime.now(UTC)
        check = await self.spend.check(context, now) if self.spend else NO_BUDGET
        decision = self.rules.decide(context, messages=messages, now=now, computed=check.computed)
        max_tokens = min(decision.max_tokens, job.params.max_tokens or decision.max_tokens)
        needs = needs_of(job, prompt_tokens=decision.prompt_tokens_est, max_tokens=max_tokens)
        chain, skipped = filter_chain(decision.chain, self.catalog, needs)
        routing = _routing(decision, context.get("task_type"), task_source, chain, skipped, max_tokens)
        if not chain:
            return out.rejected(
                clock, "no_eligible_model",
                f"rule {decision.rule!r}: no model in its chain can serve this request: "
                + "; ".join(f"{s.model}: {s.reason}" for s in skipped),
                routing=routing,
            )

        if self.health is not None:
            block, reasons = await self.health.gate(chain)
            if block is not None:
                return out.failed(clock, block.error_type, block.message, retryable=True, routing=routing)
            tripped = [Skip(model=m, reason=r) for m, r in reasons.items() if r is not None]
            if tripped:
                chain = [m for m in chain if reasons.get(m) is None]
                routing = routing.model_copy(
                    update={"chain": chain, "skipped": [*routing.skipped, *tripped],
                            "model": chain[0] if chain else routing.model}
                )
                if not chain:
                    return out.failed(
                        clock, "circuit_open",
                        "every model in the chain is paused: "
                        + "; ".join(f"{s.model}: {s.reason}" for s in tripped),
                        retryable=True, routing=routing,
                    )

        rid = reservation_id(out.job_id, out.job_try)
        held: Reservation | None = None
        budget: list[BudgetLineInfo] = []
        if self.spend is not None and check.lines:
            # Never trust a producer's low prompt_tokens_est for money: estimate from the messages.
            prompt_tokens = max(decision.prompt_tokens_est,
                                estimate_prompt_tokens(messages, tools=job.params.tools))
            worst = self.spend.worst_case(chain, prompt_tokens, max_tokens)
            held = await self.spend.reserve(rid, check, worst)
            budget = lines_info(held.lines)
            if not held.ok:
                return _not_covered(out, clock, held, worst, routing, budget)

        request = ChatRequest(
            messages=messages,
            chain=tuple(chain),
            max_tokens=max_tokens,
            provider=thaw(decision.provider) if decision.provider else None,
            params={**thaw(decision.params), **job.params.upstream()},
            user=job.context.user_id,
        )
        t0 = time.monotonic()
        try:
            completion = await self.client.complete(
                request, deadline=t0 + self.upstream_budget_s,
                on_attempt=self.health.record if self.health else None,
            )
        except UpstreamError as exc:
            clock.upstream_ms = int((time.monotonic() - t0) * 1000)
            if held is not None:
                budget = await self.spend.release(rid) if self.spend else budget
            routing = routing.model_copy(update={"attempts": [_attempt(a) for a in exc.attempts]})
            return out.failed(clock, exc.error_type, exc.message, retryable=exc.retryable,
                              routing=routing, budget=budget)
        # A cancelled call (shutdown) keeps its reservation: the lease expiry charges it in full,
        # since OpenRouter may have billed it.
        clock.upstream_ms = int((time.monotonic() - t0) * 1000)
        usage, cost_nano = self._usage(completion)
        if held is not None and self.spend is not None:
            budget = await self.spend.settle(rid, cost_nano)
        routing = routing.model_copy(
            update={
                "model_served": completion.model_served,
                "provider": completion.provider,
                "attempts": [_attempt(a) for a in completion.attempts],
            }
        )
        return out.succeeded(
            clock, content=completion.content, message=dict(completion.message), routing=routing,
            usage=usage, budget=budget,
        )

    def _usage(self, c: Completion) -> tuple[Usage, int]:
        """``usage.cost`` is what OpenRouter charged; without it, tokens × the catalog's prices."""
        if c.cost_nano is not None:
            cost, source = c.cost_nano, "usage.cost"
        else:
            info = self.catalog.get(c.model_served)
            if info is None:
                cost, source = 0, "none"
            else:
                cost, source = info.cost_nano(c.prompt_tokens, c.completion_tokens), "catalog"
        usage = Usage(
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            cost_usd=nano_to_usd(cost),
            cost_source=source,  # type: ignore[arg-type]
        )
        return usage, cost


def _routing(
    d: Decision, task_type: str | None, task_source: str, chain: list[str], skipped: list[Skip],
    max_tokens: int,
) -> Routing:
    return Routing(
        rule=d.rule,
        rules_version=d.rules_version,
        task_type=task_type,
        task_type_source=task_source,  # type: ignore[arg-type]
        model=chain[0] if chain else d.model,
        chain=chain,
        skipped=skipped,
        max_tokens=max_tokens,
        trace=[TraceItem(rule=t.rule, matched=t.matched, why=t.why) for t in d.trace],
    )


def _not_covered(
    out: Outcome, clock: JobClock, held: Reservation, worst: int, routing: Routing,
    budget: list[BudgetLineInfo],
) -> Result:
    if held.denied is None:
        # This try's reservation was already settled or reclaimed: calling again is unreserved spend.
        return out.failed(
            clock, "already_charged",
            f"this try's reservation is {held.state}; resubmit under a new job id to run it again",
            routing=routing, budget=budget,
        )
    d = held.denied
    return out.rejected(
        clock, "budget_exceeded",
        f"budget {d.name!r} cannot cover this job: limit {nano_to_usd(d.limit_nano)} USD, "
        f"remaining {nano_to_usd(d.remaining_nano)} USD, job needs up to {nano_to_usd(worst)} USD",
        routing=routing,
        budget=budget,
        details={"budget": d.name, "limit_usd": nano_to_usd(d.limit_nano),
                 "remaining_usd": nano_to_usd(d.remaining_nano), "needed_usd": nano_to_usd(worst)},
    )


def _attempt(a: Any) -> AttemptInfo:
    return AttemptInfo.model_validate(
        {k: v for k, v in a.to_dict().items() if k in AttemptInfo.model_fields}
    )
