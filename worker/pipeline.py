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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from producer_client.contract import BudgetLineInfo, Job, Result
from producer_client.errors import InvalidJob
from producer_client.jobs import parse_job
from worker.acceptance import check, response_format
from worker.budget import BudgetState
from worker.classify import classified_context
from worker.eligibility import filter_chain
from worker.envelope import BadEnvelope, Envelope
from worker.health import HealthCache
from worker.metrics import NO_METRICS, Metrics
from worker.openrouter import Attempt, ChatRequest, Completion, OpenRouterClient, UpstreamError
from worker.openrouter.errors import StopCalls
from worker.outcome import JobClock, Outcome
from worker.results import Finish
from worker.routing import Policy, Route, chain_skips, decides_otherwise, route, skip_text
from worker.rules import thaw
from worker.spend import AlreadyCharged, Denied, Hold, Spend, priced, reservation_id, worst_case
from worker.tally import Tally
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
    """One job in flight: what the steps learn, in order. (Not the envelope: a thousand jobs wait
    on upstream at once, and each would keep its raw document besides the parsed one.)"""

    job_id: str
    queue_key: str
    batch_id: str | None
    clock: JobClock
    out: Outcome
    job: Job
    messages: list[dict[str, Any]]
    policy: Policy
    hold: Hold
    unknown_nano: int = 0  # worst cases of attempts that may have been billed without an answer
    step_worst: int = 0  # the worst case of one attempt of the step being asked

    def finish(self, result: Result, charge_nano: int = 0) -> Finish:
        return Finish(result, self.queue_key, self.batch_id, self.hold, charge_nano,
                      job=self.job, messages=self.messages)


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
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.policy = policy
        self.metrics = metrics
        self.client = client
        self.spend = spend
        self.health = health
        self.upstream_budget_s = upstream_budget_s
        self.max_tries = max_tries

    def start(self, inp: JobInput) -> _Run | Finish:
        """The job parsed and ready to route, or its finish already (a bad envelope or job, too
        many tries). Separate from :meth:`call` so the caller can drop the raw envelope before the
        long wait on upstream."""
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
            inp.job_id, inp.queue_key, env.batch_id, clock,
            Outcome(inp.job_id, inp.job_try, dict(job.metadata)), job,
            [m.model_dump(exclude_none=True) for m in job.messages], self.policy.current,
            Hold(reservation_id(inp.job_id, inp.job_try)),
        )
        if inp.job_try > self.max_tries:
            return run.finish(run.out.failed(
                clock, "worker_lost",
                f"job started {inp.job_try} times without finishing (worker crashed or was killed); "
                f"giving up after {self.max_tries} tries",
            ))
        return run

    async def call(self, run: _Run | Finish) -> Finish:
        """Route, gate, reserve and call for a started job (never raises for a bad job or an
        upstream failure)."""
        if isinstance(run, Finish):
            return run
        return await self._route_and_call(run)

    async def run(self, inp: JobInput) -> Finish:
        """The job's one finish: :meth:`start` then :meth:`call`."""
        return await self.call(self.start(inp))

    async def _route_and_call(self, run: _Run) -> Finish:
        rules = run.policy.rules
        now = datetime.now(UTC)
        context, source = classified_context(run.job.context.model_dump(), run.messages)
        lines = self.spend.lines(rules.budgets, rules.timezone, context, now)
        view = await self.spend.view(lines) if lines and rules.reads_budget else None

        def decide(computed: Any) -> Route:
            return route(run.policy, run.job, run.messages, now=now, computed=computed,
                         context=context, task_source=source, job_id=run.job_id)

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
            counters = self.spend.fresh_view(run.hold)
            if not decides_otherwise(run.policy, chosen, run.job, run.messages, now=now, computed=counters,
                                     job_id=run.job_id):
                return await self._call(run, gated, request)
            fresh = self._eligible(run, decide(counters))
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
            params=self._params(run, r),
            user=job.context.user_id,
        )

    @staticmethod
    def _params(run: _Run, r: Route) -> dict[str, Any]:
        """The rule's params, the job's on top; a cascade accepting by JSON schema asks a model
        with structured outputs for that schema, unless the job gave a format of its own."""
        params = {**thaw(r.decision.params), **run.job.params.upstream()}
        if r.decision.accept is not None and "response_format" not in params:
            fmt = response_format(r.decision.accept, run.policy.catalog.get(r.model))
            if fmt is not None:
                params["response_format"] = fmt
        return params

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
        """Ask the route's chain; with a validated cascade, escalate each answer the rule does not
        accept to its next step (each step held and charged) until one is accepted."""
        accept = r.decision.accept
        tally = Tally()
        pending = list(r.decision.escalate) if accept is not None else []
        step = r
        run.step_worst = run.hold.worst_nano  # 0: no budget held; worked out if ever needed
        while True:
            got = await self._ask(run, step, request)
            if isinstance(got, UpstreamError):
                tally.add_attempts(got.attempts)
                if accept is not None:
                    tally.add_step(step.model, False, f"no answer ({got.error_type})")
                return self._failed(run, r, tally, got.error_type, got.message)
            cost, source = self._cost(run, got)
            tally.add_answer(got, cost, source)
            if accept is None:
                return self._succeeded(run, r, tally, got)
            verdict = check(got.content, accept)
            tally.add_step(got.model_served, verdict.ok, verdict.reason, cost)
            if verdict.ok:
                return self._succeeded(run, r, tally, got)
            nxt = await self._escalation(run, r, pending, tally)
            if isinstance(nxt, Finish):
                return nxt
            if nxt is None:
                return self._failed(run, r, tally, "not_accepted",
                                    f"no step's answer was accepted: {tally.reasons()}")
            step, request = nxt

    async def _ask(self, run: _Run, r: Route, request: ChatRequest) -> Completion | UpstreamError:
        """One call over ``r``'s chain; attempts that may have been billed are counted and
        covered before any retry."""
        t0 = time.monotonic()

        async def on_attempt(attempt: Attempt) -> None:
            self.metrics.attempt(attempt)
            await self.health.record(attempt)
            if attempt.outcome_unknown:
                if not run.step_worst:
                    run.step_worst = self._worst(run, r)
                run.unknown_nano += run.step_worst
                await self._cover_unknown(run)

        try:
            return await self.client.complete(request, deadline=t0 + self.upstream_budget_s,
                                              on_attempt=on_attempt)
        except UpstreamError as exc:
            return exc
        finally:
            run.clock.upstream_ms += int((time.monotonic() - t0) * 1000)

    async def _escalation(
        self, run: _Run, r: Route, pending: list[str], tally: Tally
    ) -> tuple[Route, ChatRequest] | Finish | None:
        """The next cascade step that can serve the job, held on the budget; None when no step
        is left. A step the job's needs or an open circuit rule out is recorded and passed over."""
        while pending:
            model = pending.pop(0)
            chain, skipped = filter_chain((model,), run.policy.catalog, r.needs)
            if not chain:
                tally.add_step(model, False, f"skipped: {skip_text(skipped)}")
                continue
            block, reasons = await self.health.gate(chain)
            if block is not None:
                return self._failed(run, r, tally, block.error_type, block.message)
            if (why := reasons.get(model)) is not None:
                tally.add_step(model, False, f"skipped: {why}")
                continue
            step = replace(r, chain=tuple(chain))
            worst = self._worst(run, step)
            if run.hold.active:
                grown = await self.spend.grow(run.hold, worst)
                if grown is None:
                    tally.add_step(model, False, "skipped: the budget cannot cover this step")
                    return self._failed(run, r, tally, "budget_exceeded",
                                        f"no answer accepted and the budget cannot cover escalating "
                                        f"to {model}: {tally.reasons()}")
                run.hold = grown
            run.step_worst = worst
            return step, self._request(run, step)
        return None

    def _succeeded(self, run: _Run, r: Route, tally: Tally, c: Completion) -> Finish:
        routing = r.routing()
        routing.update(model_served=c.model_served, provider=c.provider, attempts=tally.attempts,
                       escalations=tally.steps)
        usage = tally.usage(run.unknown_nano)
        assert usage is not None  # an answer came back
        result = run.out.succeeded(run.clock, content=c.content, message=dict(c.message), routing=routing,
                                   usage=usage)
        return run.finish(result, tally.cost_nano + run.unknown_nano)

    def _failed(self, run: _Run, r: Route, tally: Tally, error_type: str, message: str) -> Finish:
        """A failure after calling: whatever was answered or may have been billed is charged."""
        routing = r.routing()
        routing.update(attempts=tally.attempts, escalations=tally.steps)
        usage = tally.usage(run.unknown_nano)
        result = run.out.failed(run.clock, error_type, message, routing=routing, usage=usage)
        return run.finish(result, tally.cost_nano + run.unknown_nano)

    async def _cover_unknown(self, run: _Run) -> None:
        """An attempt that may have been billed: hold another worst case before any retry."""
        if not run.hold.active:
            return
        grown = await self.spend.grow(run.hold, run.step_worst)
        if grown is None:
            raise StopCalls(
                "budget_exceeded",
                "an attempt got no answer and may have been billed; the budget cannot cover another",
            )
        run.hold = grown

    @staticmethod
    def _worst(run: _Run, r: Route) -> int:
        """The most one attempt of this route can cost. Never trust a producer's low
        ``prompt_tokens_est`` with money: the messages give an estimate of their own."""
        prompt_tokens = max(r.decision.prompt_tokens_est,
                            estimate_prompt_tokens(run.messages, tools=run.job.params.tools))
        return worst_case(run.policy.catalog, r.chain, prompt_tokens, r.max_tokens)

    def _cost(self, run: _Run, c: Completion) -> tuple[int, str]:
        """``usage.cost`` is what OpenRouter charged; without it, tokens × the catalog's prices,
        and for a model the catalog does not know, the dearest known prices (never free)."""
        if c.cost_nano is not None:
            return c.cost_nano, "usage.cost"
        info = priced(run.policy.catalog, c.model_served)
        return info.cost_nano(c.prompt_tokens, c.completion_tokens), "catalog"


def _lines(states: tuple[BudgetState, ...]) -> list[BudgetLineInfo]:
    return [BudgetLineInfo(**s.as_dict()) for s in states]


__all__ = ["JobInput", "Pipeline", "PolicyRef"]
