"""A loaded rule set and its one operation: pick the first rule that matches a context.

Pure and synchronous: no I/O, no clock unless a rule reads ``hour``/``weekday`` and no ``now``
was given. Budget state and other values that need Redis are fetched by the caller and passed
in as ``computed``, so deciding stays a few microseconds and trivially testable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from worker.budget.config import BudgetDef
from worker.rules.experiments import Experiment
from worker.rules.model import Decision, JobNeeds, Rule, new_decision, with_variant
from worker.rules.scope import Scope
from worker.rules.select import needs_in
from worker.rules.trace import TraceEntry, new_trace_entry
from worker.rules.values import TRUE, UNKNOWN, Outcome

#: Trace entries remembered per rule. Most outcomes repeat ("user_tier: 'pro' != 'free'"), and
#: reusing the frozen entry is several times cheaper than building one; the bound keeps
#: outcomes that embed ever-changing values (budgets, latencies) from growing it forever.
_MEMO_SIZE: Final = 512


@dataclass(frozen=True, slots=True, eq=False)
class RuleSet:
    """Validated rules, sorted by (priority, file order); only enabled ones are kept.

    ``version`` is ``"sha256:"`` + 12 hex digits of the canonical JSON of the source document,
    so every decision names the exact policy that made it. Rule sets compare and hash by
    identity (use ``version`` to compare contents), so they can key caches.
    """

    version: str
    timezone: ZoneInfo
    tiers: Mapping[str, str]
    rules: tuple[Rule, ...]
    budgets: tuple[BudgetDef, ...]
    source: str = "<memory>"
    model_ids: frozenset[str] = field(default=frozenset(), repr=False)
    #: First segments of every field path the rules' conditions read.
    reads: frozenset[str] = field(default=frozenset(), repr=False)
    #: Experiments by the name of the rule they split.
    experiments: Mapping[str, Experiment] = field(default_factory=dict, repr=False)
    _memo: tuple[dict[Outcome, TraceEntry], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", tuple({} for _ in self.rules))

    @property
    def reads_budget(self) -> bool:
        """Whether any condition looks at budget counters (then jobs fetch them before deciding)."""
        return not self.reads.isdisjoint(("budget", "budget_remaining"))

    def models(self) -> frozenset[str]:
        """Every model id a tier or an enabled rule can name (for catalog and price checks)."""
        return self.model_ids

    def decide(
        self,
        context: Mapping[str, Any],
        *,
        messages: Sequence[Mapping[str, Any]] = (),
        now: datetime | None = None,
        computed: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        task_source: str | None = None,
        needs: JobNeeds | None = None,
    ) -> Decision:
        """The first matching rule's decision. Never raises: an unevaluable rule just doesn't match.

        ``computed`` values shadow ``context`` fields of the same name in conditions;
        ``messages`` feed ``complexity``, and ``prompt_tokens_est`` when neither carries a usable one;
        ``now`` (default: the current time; naive means UTC) feeds ``hour`` and ``weekday``;
        ``job_id`` assigns experiment variants to jobs whose context lacks the experiment's unit;
        ``task_source`` feeds ``task_type_source``; ``needs`` (default: what the context and the
        messages show) is what a ``select`` must honour besides the rule's own needs.
        """
        scope = Scope(context, messages or (), now, computed, self.timezone, task_source)
        trace: list[TraceEntry] = []
        rule = self.rules[-1]  # the catch-all: validation guarantees it is last
        for rule, memo in zip(self.rules, self._memo, strict=True):
            try:
                outcome = rule.condition(scope)
            except Exception as exc:  # a context value whose own methods misbehave
                outcome = (UNKNOWN, f"cannot evaluate: {type(exc).__name__}: {exc}")
            entry = memo.get(outcome)
            if entry is None:
                entry = new_trace_entry(rule.name, outcome[0] is TRUE, outcome[1])
                if len(memo) < _MEMO_SIZE:
                    memo[outcome] = entry
            trace.append(entry)
            if entry.matched:
                break
        decision = new_decision(rule, tuple(trace), self.version, scope.prompt_tokens())
        if rule.select is not None:
            wanted = needs if needs is not None else needs_in(context, messages or ())
            decision = rule.select.choose(decision, decision.prompt_tokens_est, wanted)
        experiment = self.experiments.get(rule.name) if self.experiments else None
        if experiment is None:
            return decision
        return with_variant(decision, experiment.assign(context, job_id))
