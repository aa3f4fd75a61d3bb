"""One job's path through a worker: open → route → gate → reserve → call → finish.

Each step is a method with one job; pure decisions live in their own modules (routing, rules,
eligibility). Every way a job can end becomes exactly one :class:`worker.results.Finish`, which
the runner hands to the finish script (settle, result, wake-ups, all in one call). Nothing here
raises for a bad job or an upstream failure.

Money, in order: the request is built before anything is reserved (a request the client would
refuse must not hold money); the reservation covers the worst case of one attempt; an attempt
whose outcome is unknown (sent, no answer) may have been billed, so it is charged its worst case
and a retry first holds another one; every other failure releases what was held. Only a
cancelled job (shutdown) keeps its reservation: the lease expiry charges it, since OpenRouter
may have billed it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from producer_client.contract import AttemptInfo, BudgetLineInfo, Job, Result, Usage
from producer_client.errors import InvalidJob
from producer_client.jobs import parse_job
from producer_client.money import nano_to_usd
from worker.budget import BudgetState
from worker.classify import classified_context
from worker.envelope import BadEnvelope, Envelope
from worker.health import HealthCache
from worker.openrouter import Attempt, ChatRequest, Completion, OpenRouterClient, UpstreamError
from worker.openrouter.errors import StopCalls
from worker.outcome import JobClock, Outcome
from worker.results import Finish
from worker.routing import Policy, Route, chain_skips, route, skip_text
from worker.rules import thaw
from worker.spend import AlreadyCharged, Denied, Hold, Spend, reservation_id, worst_case
from worker.tokens import estimate_prompt_tokens


class PolicyRef:
    """The policy in force. A reload replaces it whole, in one assignment; a job reads it once."""

    def __init__(self, policy: Policy) -> None:
        self.current = policy


@dataclass(frozen=True)
class JobInput:
    job_id: str
    queue_key: str
    envelope: Envelope | BadEnvelope
    job_try: int = 1


@dataclass
class _Run:
    """One job in flight: what the steps learn, in order."""

    inp: JobInput
    clock: JobClock
    out: Outcome
    job: Job
    messages: list[dict[str, Any]]
    policy: Policy
    hold: Hold
    unknown_attempts: int = 0

    def finish(self, result: Result, charge_nano: int = 0) -> Finish:
        return Finish(result, self.inp.queue_key, self.batch_id, self.hold, charge_nano,
                      job=self.job, messages=self.messages)

    @property
    def batch_id(self) -> str | None:
        env = self.inp.envelope
        return env.batch_id


class Pipeline:
    def __init__(
        self,
        policy: PolicyRef,
        client: OpenRouterClient,
        spend: Spend,
        health: HealthCache,
        *,
        upstream_budget_s: float = 115.0,
        max_tries: int = 3,
    ) -> None:
        self.policy = policy
        self.client = client
        self.spend = spend
        self.health = health
        self.upstream_budget_s = upstream_budget_s
        self.max_tries = max_tries

    async def run(self, inp: JobInput) -> Finish:
        """The job's one finish (never raises for a bad job or an upstream failure)."""
        env = inp.envelope
        clock = JobClock(enqueued_at=env.enqueued_ms / 1000 if env.enqueued_ms is not None else None)
        meta = env.job.get("metadata") if isinstance(env, Envelope) else None
        out = Outcome(inp.job_id, inp.job_try, meta if isinstance(meta, dict) else {})
        if isinstance(env, BadEnvelope):
            return Finish(out.rejected(clock, "invalid_job", env.reason), inp.queue_key, env.batch_id)
        try:
            job = parse_job(env.job)
        except InvalidJob as exc:
            return Finish(out.rejected(clock, "invalid_job", str(exc)), inp.queue_key, env.batch_id)
        run = _Run(
            inp, clock, Outcome(inp.job_id, inp.job_try, dict(job.metadata)), job,
            [m.model_dump(exclude_none=True) for m in job.messages], self.policy.current,
            Hold(reservation_id(inp.job_id, inp.job_try)),
        )
        if inp.job_try > self.max_tries:
            return run.finish(run.out.failed(
                clock, "worker_lost",
                f"job started {inp.job_try} times without finishing (worker crashed or was killed); "
                f"giving up after {self.max_tries} tries",
            ))
        return await self._route_and_call(run)

    async def _route_and_call(self, run: _Run) -> Finish:
        rules = run.policy.rules
        now = datetime.now(UTC)
        context, source = classified_context(run.job.context.model_dump(), run.messages)
        lines = self.spend.lines(rules.budgets, rules.timezone, context, now)
        view = await self.spend.view(lines) if lines and rules.reads_budget else None

        def decide(computed: Any) -> Route:
            return route(run.policy, run.job, run.messages, now=now, computed=computed,
                         context=context, task_source=source, job_id=run.inp.job_id)

        chosen = self._eligible(run, decide(view))
        if isinstance(chosen, Finish):
            return chosen
        gated = await self._gate(run, chosen)
        if isinstance(gated, Finish):
            return gated
        request = self._request(run, gated)
        held = await self._reserve(run, gated, lines)
        if isinstance(held, Finish):
            return held
        if run.hold.active and rules.reads_budget:
            # The reservation's reply carries the counters as they were just before it: if the
            # rules would choose differently on them, swap the reservation for the new route.
            fresh = self._eligible(run, decide(self.spend.fresh_view(run.hold)))
            if not isinstance(fresh, Finish) and not fresh.same_call(gated):
                regated = await self._gate(run, fresh)
                if isinstance(regated, Finish):
                    return regated
                gated, request = regated, self._request(run, regated)
                held = await self._reserve(run, gated, lines, replace=True)
                if isinstance(held, Finish):
                    return held
        return await self._call(run, gated, request)

    def _eligible(self, run: _Run, r: Route) -> Route | Finish:
        if r.chain:
            return r
        return run.finish(run.out.rejected(
            run.clock, "no_eligible_model",
            f"rule {r.decision.rule!r}: no model in its chain can serve this request: {skip_text(r.skipped)}",
            routing=r.routing(),
        ))

    async def _gate(self, run: _Run, r: Route) -> Route | Finish:
        """Drop models whose circuit is open; stop if the account is blocked or nothing is left."""
        block, reasons = await self.health.gate(r.chain)
        if block is not None:
            return run.finish(run.out.failed(run.clock, block.error_type, block.message, routing=r.routing()))
        tripped = chain_skips(r.chain, reasons)
        if not tripped:
            return r
        r = r.without(tripped)
        if r.chain:
            return r
        return run.finish(run.out.failed(
            run.clock, "circuit_open", f"every model in the chain is paused: {skip_text(tripped)}",
            routing=r.routing(),
        ))

    def _request(self, run: _Run, r: Route) -> ChatRequest:
        d, job = r.decision, run.job
        return ChatRequest(
            messages=run.messages,
            chain=r.chain,
            max_tokens=r.max_tokens,
            provider=thaw(d.provider) if d.provider else None,
            params={**thaw(d.params), **job.params.upstream()},
            user=job.context.user_id,
        )

    async def _reserve(self, run: _Run, r: Route, lines: Any, *, replace: bool = False) -> Finish | None:
        """Hold the worst case of one attempt on every budget line (none: an empty hold, no call)."""
        if not lines:
            return None
        worst = self._worst(run, r)
        held = await self.spend.reserve(run.hold.rid, lines, worst, replace=replace)
        if isinstance(held, Denied):
            run.hold = Hold(run.hold.rid)
            return run.finish(run.out.rejected(
                run.clock, "budget_exceeded", held.message(), routing=r.routing(),
                budget=_lines(held.states), details=held.details(),
            ))
        if isinstance(held, AlreadyCharged):
            failed = run.out.failed(run.clock, "already_charged", held.message(), routing=r.routing())
            return run.finish(failed)
        run.hold = held
        return None

    async def _call(self, run: _Run, r: Route, request: ChatRequest) -> Finish:
        routing = r.routing()
        t0 = time.monotonic()

        async def on_attempt(attempt: Attempt) -> None:
            await self.health.record(attempt)
            if attempt.outcome_unknown:
                run.unknown_attempts += 1
                await self._cover_unknown(run, r)

        try:
            completion = await self.client.complete(
                request, deadline=t0 + self.upstream_budget_s, on_attempt=on_attempt
            )
        except UpstreamError as exc:
            run.clock.upstream_ms = int((time.monotonic() - t0) * 1000)
            charge = self._unknown_charge(run, r)
            routing = routing.model_copy(update={"attempts": [_attempt(a) for a in exc.attempts]})
            usage = _usage(0, 0, charge, "unknown_outcome") if charge else None
            return run.finish(run.out.failed(run.clock, exc.error_type, exc.message, routing=routing,
                                             usage=usage), charge)
        run.clock.upstream_ms = int((time.monotonic() - t0) * 1000)
        cost, source = self._cost(run, completion)
        extra = self._unknown_charge(run, r)
        routing = routing.model_copy(update={
            "model_served": completion.model_served,
            "provider": completion.provider,
            "attempts": [_attempt(a) for a in completion.attempts],
        })
        usage = _usage(completion.prompt_tokens, completion.completion_tokens, cost + extra,
                       "unknown_outcome" if extra else source)
        result = run.out.succeeded(run.clock, content=completion.content, message=dict(completion.message),
                                   routing=routing, usage=usage)
        return run.finish(result, cost + extra)

    async def _cover_unknown(self, run: _Run, r: Route) -> None:
        """An attempt that may have been billed: hold another worst case before any retry."""
        if not run.hold.active:
            return
        grown = await self.spend.cover_another(run.hold)
        if grown is None:
            raise StopCalls(
                "budget_exceeded",
                "an attempt got no answer and may have been billed; the budget cannot cover another",
            )
        run.hold = grown

    def _unknown_charge(self, run: _Run, r: Route) -> int:
        """Worst case of each attempt whose outcome is unknown (they may all have been billed)."""
        if not run.unknown_attempts:
            return 0
        return run.unknown_attempts * (run.hold.worst_nano or self._worst(run, r))

    @staticmethod
    def _worst(run: _Run, r: Route) -> int:
        """The most one attempt of this route can cost. Never trust a producer's low
        ``prompt_tokens_est`` with money: the messages give an estimate of their own."""
        prompt_tokens = max(r.decision.prompt_tokens_est,
                            estimate_prompt_tokens(run.messages, tools=run.job.params.tools))
        return worst_case(run.policy.catalog, r.chain, prompt_tokens, r.max_tokens)

    def _cost(self, run: _Run, c: Completion) -> tuple[int, str]:
        """``usage.cost`` is what OpenRouter charged; without it, tokens × the catalog's prices."""
        if c.cost_nano is not None:
            return c.cost_nano, "usage.cost"
        info = run.policy.catalog.get(c.model_served)
        if info is None:
            return 0, "none"
        return info.cost_nano(c.prompt_tokens, c.completion_tokens), "catalog"


def _usage(prompt_tokens: int, completion_tokens: int, cost_nano: int, source: str) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=nano_to_usd(cost_nano),
        cost_source=source,  # type: ignore[arg-type]
    )


def _lines(states: tuple[BudgetState, ...]) -> list[BudgetLineInfo]:
    return [BudgetLineInfo(**s.as_dict()) for s in states]


def _attempt(a: Attempt) -> AttemptInfo:
    return AttemptInfo.model_validate({k: v for k, v in a.to_dict().items() if k in AttemptInfo.model_fields})


__all__ = ["JobInput", "Pipeline", "PolicyRef"]
