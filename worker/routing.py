"""The routing step of a job, pure: classify, decide, and keep the models that can serve it.

No I/O: budget counters the rules may read arrive as ``computed``; the clock as ``now``. The
result, a :class:`Route`, is what the later steps (breaker, budget, call) work from and what the
result document's ``routing`` block is built from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from producer_client.contract import Job, Skip
from worker.catalog import Catalog
from worker.classify import TaskTypeSource, classified_context
from worker.eligibility import Needs, filter_chain, needs_of
from worker.rules import Decision, RuleSet
from worker.rules.model import JobNeeds


@dataclass(frozen=True)
class Policy:
    """One consistent routing policy: the rules and the catalog they were compiled against.

    A worker swaps its whole Policy at once on a hot reload; a job routes with the one it read
    when it started, from start to result.
    """

    rules: RuleSet
    catalog: Catalog
    number: int | None = None  # the rules version number in Redis; None: read from a file
    doc: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)  # for recompiles


@dataclass(frozen=True)
class Route:
    decision: Decision
    context: Mapping[str, Any]
    task_source: TaskTypeSource
    chain: tuple[str, ...]
    skipped: tuple[Skip, ...]
    max_tokens: int
    needs: Needs
    rules_number: int | None = None

    @property
    def model(self) -> str:
        return self.chain[0] if self.chain else self.decision.model

    def without(self, tripped: Sequence[Skip]) -> Route:
        """The same route minus models the breaker says to skip now."""
        dropped = {s.model for s in tripped}
        return replace(
            self, chain=tuple(m for m in self.chain if m not in dropped), skipped=(*self.skipped, *tripped)
        )

    def same_call(self, other: Route) -> bool:
        """Whether two routes make the same upstream request (so a reservation for one fits both)."""
        return (self.decision.rule, self.chain, self.max_tokens) == (
            other.decision.rule, other.chain, other.max_tokens
        )

    def routing(self) -> dict[str, Any]:
        """The result's ``routing`` block as plain data (validated once, with the whole result)."""
        d = self.decision
        a = d.experiment
        return {
            "rule": d.rule,
            "rules_version": d.rules_version,
            "rules_number": self.rules_number,
            "task_type": self.context.get("task_type"),
            "task_type_source": self.task_source,
            "model": self.model,
            "chain": list(self.chain),
            "skipped": list(self.skipped),
            "max_tokens": self.max_tokens,
            "trace": [{"rule": t.rule, "matched": t.matched, "why": t.why} for t in d.trace],
            "experiment": None if a is None else {
                "name": a.experiment, "variant": a.variant.name, "unit_hash": a.unit_hash, "unit": a.unit,
            },
        }


def route(
    policy: Policy,
    job: Job,
    messages: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    computed: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    task_source: TaskTypeSource | None = None,
    job_id: str | None = None,
) -> Route:
    """Decide for ``job``. ``context``/``task_source`` reuse an earlier classification; ``job_id``
    assigns an experiment's variant when the context lacks the experiment's unit."""
    if context is None or task_source is None:
        context, task_source = classified_context(job.context.model_dump(), messages)
    own = needs_of(job, prompt_tokens=0, max_tokens=0)
    decision = policy.rules.decide(
        context, messages=messages, now=now, computed=computed, job_id=job_id, task_source=task_source,
        needs=JobNeeds(own.tools, own.vision, own.structured, job.params.max_tokens),
    )
    max_tokens = min(decision.max_tokens, job.params.max_tokens or decision.max_tokens)
    needs = replace(own, prompt_tokens=decision.prompt_tokens_est, max_tokens=max_tokens)
    chain, skipped = filter_chain(decision.chain, policy.catalog, needs)
    # A select that left nothing says why, so a no_eligible_model rejection carries the reasons.
    skipped = [*(Skip(model=models, reason=reason) for models, reason in decision.excluded), *skipped]
    return Route(decision, context, task_source, tuple(chain), tuple(skipped), max_tokens, needs,
                 policy.number)


def decides_otherwise(
    policy: Policy, first: Route, job: Job, messages: Sequence[Mapping[str, Any]], *,
    now: datetime, computed: Mapping[str, Any] | None, job_id: str | None = None,
) -> bool:
    """Whether the rules alone, given other ``computed`` values (fresh budget counters), choose a
    different rule, chain or token cap than ``first``: when they do not, :func:`route` would give
    the same route again, and the eligibility filter need not run twice."""
    n = first.needs
    d = policy.rules.decide(
        first.context, messages=messages, now=now, computed=computed, job_id=job_id,
        task_source=first.task_source, needs=JobNeeds(n.tools, n.vision, n.structured, job.params.max_tokens),
    )
    f = first.decision
    return (d.rule, d.chain, d.max_tokens, d.prompt_tokens_est) != (
        f.rule, f.chain, f.max_tokens, f.prompt_tokens_est)


def chain_skips(chain: Sequence[str], reasons: Mapping[str, str | None]) -> list[Skip]:
    return [Skip(model=m, reason=r) for m in chain if (r := reasons.get(m)) is not None]


def skip_text(skips: Sequence[Skip]) -> str:
    return "; ".join(f"{s.model}: {s.reason}" for s in skips)

