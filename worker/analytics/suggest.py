"""The seed's weekly review, by the numbers: where can a cheaper model take over? (pure)

"Review the routing log weekly. If a cheaper model handles a category well, update the rules to
route there by default." For each (task type, rule) in the rollups:

1. The current model is the rule's model in the active rules. Candidates are the models that
   actually served that task under that rule (as an experiment variant or as a fallback) at a
   lower observed cost per job.
2. Both need ``min_samples`` scored jobs (feedback). Then a one-sided Welch non-inferiority test
   at 95 %: is the candidate's mean quality at least the current one's minus ``tolerance``? The
   cheapest candidate that passes is proposed (``route``), with the saving per month (30 days)
   at the volume observed in the window. Candidates that fail are reported (``keep``).
3. Otherwise the report says what is missing: feedback on the current model (``feedback``), an
   experiment already under way (``wait``), or an experiment to start (``experiment``), with a
   ready experiment block: on the rule itself when it only serves this task type, else on a copy
   of the rule narrowed to the task type, so the other task types keep their routing.

A proposal becomes a rules change the same way: the rule's model is replaced (the old model
becomes the first fallback) when the rule serves only this task type, else a narrowed copy that
routes to the candidate is inserted just before the rule (same priority, earlier in the file, so
it is evaluated first). :func:`apply_edits` turns edits into a complete rules document.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from worker.analytics.rollups import Metrics
from worker.analytics.stats import Mean, NonInferiority, non_inferiority
from worker.catalog import Catalog
from worker.rollup_format import NONE, OTHER
from worker.rules import Rule, RuleSet, thaw

Action = Literal["route", "keep", "experiment", "wait", "feedback", "skip"]
MONTH_S: Final = 30 * 86_400
#: The share of traffic a suggested experiment sends to the cheaper model.
EXPERIMENT_SHARE: Final = 20
_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Settings:
    min_samples: int = 200
    tolerance: float = 0.02
    window_s: int = 7 * 86_400
    today: date | None = None  # the salt of a suggested experiment (default: today)


@dataclass(frozen=True)
class Outcome:
    """One model's record for one (task type, rule) in the window."""

    model: str
    jobs: int
    cost_per_job_nano: int | None
    quality: Mean


@dataclass(frozen=True)
class Edit:
    """One change to the rules document: a rule replaced or inserted, and/or an experiment added."""

    rule: Mapping[str, Any] | None = None
    replaces: str | None = None  # the rule (by name) that ``rule`` replaces
    before: str | None = None  # the rule (by name) ``rule`` is inserted before
    experiment: Mapping[str, Any] | None = None
    conclude: str | None = None  # an experiment (by name) to conclude with control as the winner


@dataclass(frozen=True)
class Suggestion:
    task_type: str
    rule: str
    action: Action
    why: str
    jobs: int = 0
    current: Outcome | None = None
    candidate: Outcome | None = None
    test: NonInferiority | None = None
    monthly_saving_nano: int | None = None
    edit: Edit | None = None


def outcome(model: str, m: Metrics) -> Outcome:
    cpj = None if m.n == 0 else (2 * m.cost_nano + m.n) // (2 * m.n)
    return Outcome(model, m.n, cpj, m.quality)


def suggest(
    rules: RuleSet,
    doc: Mapping[str, Any],
    metrics: Mapping[tuple[str, ...], Metrics],
    catalog: Catalog,
    settings: Settings,
) -> list[Suggestion]:
    """One suggestion per (task type, rule) with jobs; ``metrics`` keyed (task_type, rule, model)."""
    groups: dict[tuple[str, str], dict[str, Metrics]] = defaultdict(dict)
    for (task_type, rule, model), m in metrics.items():
        groups[(task_type, rule)][model] = m
    raw_rules = {r.get("name"): r for r in doc.get("rules") or () if isinstance(r, Mapping)}
    by_name = {r.name: r for r in rules.rules}
    names = {*raw_rules, *(e.get("name") for e in doc.get("experiments") or () if isinstance(e, Mapping))}
    out = []
    for (task_type, rule_name), models in sorted(groups.items()):
        if task_type in (NONE, OTHER) or rule_name in (NONE, OTHER):
            continue
        review = _Review(task_type, rule_name, models, rules, raw_rules, catalog, settings, names)
        out.append(review.run(by_name.get(rule_name)))
    return out


class _Review:
    """The review of one (task type, rule)."""

    def __init__(self, task_type: str, rule_name: str, models: Mapping[str, Metrics], rules: RuleSet,
                 raw_rules: Mapping[Any, Mapping[str, Any]], catalog: Catalog, settings: Settings,
                 names: set[Any]) -> None:
        self.task_type, self.rule_name, self.models = task_type, rule_name, models
        self.rules, self.raw_rules, self.catalog, self.settings, self.names = (
            rules, raw_rules, catalog, settings, names)
        self.jobs = sum(m.n for m in models.values())

    def _say(self, action: Action, why: str, **extra: Any) -> Suggestion:
        return Suggestion(self.task_type, self.rule_name, action, why, self.jobs, **extra)

    def run(self, rule: Rule | None) -> Suggestion:
        if rule is None:
            return self._say("skip", "the rule is not in the active rules any more")
        if not rule.model:
            return self._say("skip", "the rule picks its model per job (select)")
        served = self.models.get(rule.model)
        if served is None or served.n == 0:
            return self._say("skip", f"its model {rule.model} served none of these jobs")
        current = outcome(rule.model, served)
        need = self.settings.min_samples
        if current.quality.n < need:
            return self._say("feedback", f"{rule.model} has {current.quality.n} scored jobs here, {need} "
                             "needed: send feedback (routeq feedback, Client.feedback)", current=current)
        limit = current.cost_per_job_nano or 0
        cheaper = sorted(
            (outcome(model, m) for model, m in self.models.items()
             if model not in (rule.model, NONE, OTHER) and m.n and _cpj(m) < limit),
            key=lambda o: (o.cost_per_job_nano or 0, o.model),
        )
        failed: list[tuple[Outcome, NonInferiority]] = []
        short: list[Outcome] = []
        for candidate in cheaper:
            test = non_inferiority(candidate.quality, current.quality, self.settings.tolerance)
            if candidate.quality.n < need or test is None:
                short.append(candidate)
            elif test.non_inferior:
                return self._route(rule, current, candidate, test)
            else:
                failed.append((candidate, test))
        if failed:
            candidate, test = failed[0]
            why = (f"{candidate.model} is cheaper but not shown non-inferior: quality "
                   f"{_q(candidate.quality)} vs {_q(current.quality)}; the 95% lower bound of the "
                   f"difference, {test.lower_bound:+.3f}, is below -{self.settings.tolerance:g}")
            return self._say("keep", why, current=current, candidate=candidate, test=test)
        return self._missing(rule, current, short[0] if short else None)

    def _route(self, rule: Rule, current: Outcome, candidate: Outcome, test: NonInferiority) -> Suggestion:
        saving = self._monthly_saving(current, candidate.cost_per_job_nano)
        why = (f"{candidate.model} is non-inferior at 95%: quality {_q(candidate.quality)} vs "
               f"{_q(current.quality)}; the lower bound of the difference, {test.lower_bound:+.3f}, is above "
               f"-{self.settings.tolerance:g} (p = {test.p_value:.3g})")
        new_rule = self._rule_for(rule, candidate.model)
        if self._only_this_task(rule):
            # The rule now routes to the candidate itself: an experiment on it has done its job.
            running = self.rules.experiments.get(rule.name)
            edit = Edit(rule=new_rule, replaces=rule.name, conclude=running.name if running else None)
        else:
            edit = Edit(rule=new_rule, before=rule.name)
        return self._say("route", why, current=current, candidate=candidate, test=test,
                         monthly_saving_nano=saving, edit=edit)

    def _missing(self, rule: Rule, current: Outcome, seen: Outcome | None) -> Suggestion:
        need = self.settings.min_samples
        running = self.rules.experiments.get(rule.name)
        if running is not None and running.status == "running":
            have = f"; {seen.model} has {seen.quality.n} scored jobs" if seen else ""
            why = f"experiment {running.name} runs on this rule: wait for {need} scored jobs per model{have}"
            return self._say("wait", why, current=current, candidate=seen)
        model = seen.model if seen else self._cheaper_in_catalog(current)
        if model is None:
            return self._say("keep", "no cheaper model seen here, and none in the rules' tiers and fallbacks",
                             current=current)
        candidate = seen or Outcome(model, 0, self._projected_cpj(model), Mean(0, None, None, None))
        why = (f"{model} is cheaper but has {candidate.quality.n} scored jobs here ({need} needed): "
               if seen else f"no cheaper model served these jobs; {model} is the cheapest known: ")
        why += "start an experiment to measure it"
        return self._say("experiment", why, current=current, candidate=candidate,
                         monthly_saving_nano=self._monthly_saving(current, candidate.cost_per_job_nano),
                         edit=self._experiment_edit(rule, model))

    # -- helpers ---------------------------------------------------------------------------------

    def _monthly_saving(self, current: Outcome, cheaper_cpj: int | None) -> int | None:
        if current.cost_per_job_nano is None or cheaper_cpj is None:
            return None
        per_job = current.cost_per_job_nano - cheaper_cpj
        return per_job * self.jobs * MONTH_S // max(1, self.settings.window_s)

    def _only_this_task(self, rule: Rule) -> bool:
        """Whether the rule's condition pins ``task_type`` to this one (so editing it is safe)."""
        when = self.raw_rules.get(rule.name, {}).get("when")
        return isinstance(when, Mapping) and when.get("task_type") == self.task_type

    def _narrowed_when(self, rule: Rule) -> Any:
        when = self.raw_rules.get(rule.name, {}).get("when") or {}
        narrow = {"task_type": self.task_type}
        return narrow if not when else {"all": [thaw(when), narrow]}

    def _rule_for(self, rule: Rule, model: str, *, keep_model: bool = False) -> dict[str, Any]:
        """The rule routing this task type to ``model`` (``keep_model``: a narrowed copy as it is)."""
        raw = dict(thaw(self.raw_rules.get(rule.name, {})))
        for key in ("model", "tier", "select"):
            raw.pop(key, None)
        fallbacks = [m for m in (rule.model, *rule.fallbacks) if m != model]
        raw["model"] = rule.model if keep_model else model
        raw["fallbacks"] = list(rule.fallbacks) if keep_model else fallbacks
        if self._only_this_task(rule):
            return raw
        raw["name"] = self._fresh(f"{rule.name}-{self.task_type}")
        raw["when"] = self._narrowed_when(rule)
        raw["description"] = f"routeq suggest: {self.task_type} jobs of rule {rule.name}"
        return raw

    def _experiment_edit(self, rule: Rule, model: str) -> Edit:
        narrowed = None if self._only_this_task(rule) else self._rule_for(rule, rule.model, keep_model=True)
        target = rule.name if narrowed is None else narrowed["name"]
        salt = (self.settings.today or date.today()).isoformat()
        experiment = {
            "name": self._fresh(_NAME_CHARS.sub("-", f"{self.task_type}-{model.split('/')[-1]}")[:60]),
            "rule": target, "status": "running", "unit": "user_id", "salt": salt,
            "description": f"routeq suggest: can {self.task_type} jobs move from {rule.model} to {model}?",
            "variants": [{"name": "control", "weight": 100 - EXPERIMENT_SHARE},
                         {"name": "cheaper", "weight": EXPERIMENT_SHARE, "model": model}],
        }
        return Edit(rule=narrowed, before=None if narrowed is None else rule.name, experiment=experiment)

    def _fresh(self, name: str) -> str:
        candidate, n = name, 2
        while candidate in self.names:
            candidate, n = f"{name}-{n}", n + 1
        self.names.add(candidate)
        return candidate

    def _mean_tokens(self) -> tuple[int, int]:
        jobs = max(1, self.jobs)
        pt = sum(m.prompt_tokens for m in self.models.values())
        ct = sum(m.completion_tokens for m in self.models.values())
        return pt // jobs, ct // jobs

    def _projected_cpj(self, model: str) -> int | None:
        info = self.catalog.get(model)
        return None if info is None else info.cost_nano(*self._mean_tokens())

    def _cheaper_in_catalog(self, current: Outcome) -> str | None:
        """The cheapest priced model of the rules' tiers and this rule's fallbacks, if cheaper."""
        rule = next(r for r in self.rules.rules if r.name == self.rule_name)
        pool = {*self.rules.tiers.values(), *rule.fallbacks} - {current.model}
        priced = []
        for model in sorted(pool):
            info = self.catalog.get(model)
            cost = self._projected_cpj(model)
            if info is not None and not info.is_free and not info.variable_price and cost is not None:
                priced.append((cost, model))
        if not priced or current.cost_per_job_nano is None:
            return None
        cost, model = min(priced)
        return model if cost < current.cost_per_job_nano else None


def _cpj(m: Metrics) -> int:
    return (2 * m.cost_nano + m.n) // (2 * m.n)


def _q(mean: Mean) -> str:
    return "-" if mean.mean is None else f"{mean.mean:.3f} (n={mean.n})"


def apply_edits(doc: Mapping[str, Any], edits: Sequence[Edit]) -> dict[str, Any]:
    """A complete rules document: ``doc`` (left as it is) with ``edits`` applied in order."""
    out: dict[str, Any] = thaw(doc)
    rules: list[Any] = list(out.get("rules") or [])
    experiments: list[Any] = list(out.get("experiments") or [])
    for edit in edits:
        if edit.rule is not None:
            names = [r.get("name") if isinstance(r, Mapping) else None for r in rules]
            target = edit.replaces or edit.before
            at = names.index(target) if target in names else len(rules)
            if edit.replaces is not None:
                rules[at] = thaw(edit.rule)
            else:
                rules.insert(at, thaw(edit.rule))
        if edit.experiment is not None:
            experiments.append(thaw(edit.experiment))
        for experiment in experiments:
            if edit.conclude is not None and experiment.get("name") == edit.conclude:
                experiment["status"], experiment["winner"] = "concluded", "control"
    out["rules"] = rules
    if experiments:
        out["experiments"] = experiments
    return out
