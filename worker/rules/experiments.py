"""A/B experiments on one rule's decision: sticky, stateless assignment by hashing.

An experiment splits the decision of one rule between variants. ``control`` keeps the rule's
decision; any other variant overrides some of ``model``, ``tier``, ``fallbacks``, ``max_tokens``,
``params``, ``provider``::

    {"name": "cls-cheap", "rule": "default", "status": "running", "unit": "user_id", "salt": "2026-12",
     "variants": [{"name": "control", "weight": 90},
                  {"name": "llama", "weight": 10, "model": "meta-llama/llama-3.1-8b-instruct"}]}

Assignment: bucket = SHA-256(salt, name, unit value) mod 10,000; variants take consecutive bucket
ranges in file order, 100 buckets per weight point (weights are whole percents summing to 100).
So the same unit always gets the same variant, in every worker, after every restart, with no
stored state. Ramping: raising a variant's weight moves only units into it (put the growing
variant last, or take the weight from the variant before it); append new variants at the end;
changing the salt re-randomises everyone. A job whose context lacks the unit is assigned by its
job id (the trace says so). ``paused``: everyone gets control; ``concluded``: everyone gets the
``winner``. The unit's value is never stored: results carry its SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from worker.rules.paths import MISSING, descend, parse_path
from worker.rules.problems import Problem, child_path
from worker.rules.provider import check_params, check_provider
from worker.rules.trace import TraceEntry, new_trace_entry
from worker.rules.values import kind, show

BUCKETS: Final = 10_000
_MEMO_SIZE: Final = 4096
PER_WEIGHT: Final = BUCKETS // 100
CONTROL: Final = "control"
Status = Literal["running", "paused", "concluded"]
STATUSES: Final = ("running", "paused", "concluded")
_KEYS: Final = ("name", "rule", "status", "unit", "salt", "variants", "winner", "description")
_VARIANT_KEYS: Final = ("name", "weight", "model", "tier", "fallbacks", "max_tokens", "params", "provider")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    start: int  # first bucket (inclusive)
    end: int  # last bucket (exclusive)
    model: str | None = None
    fallbacks: tuple[str, ...] | None = None
    max_tokens: int | None = None
    params: Mapping[str, Any] | None = None
    provider: Mapping[str, Any] | None = None
    # What this variant makes of a decision, by the decision's (model, fallbacks): the experiment
    # splits one rule, whose params and provider are fixed, so the merge is done once per chain.
    applied: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = field(
        default_factory=dict, repr=False, compare=False
    )


@dataclass(frozen=True, slots=True)
class Assignment:
    """Which variant a job got, and why (for the trace and the result's ``routing.experiment``)."""

    experiment: str
    variant: Variant
    unit_hash: str
    unit: str  # the unit's path, or "job_id"
    why: str
    # The decision's trace line for this assignment, made once (assignments are memoised).
    entry: TraceEntry = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "entry", new_trace_entry(self.experiment, True, self.why))


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    rule: str
    status: Status
    unit: str
    unit_path: tuple[str, ...]
    salt: str
    variants: tuple[Variant, ...]
    winner: str | None = None
    # Assignments of recently seen units: a unit sends many jobs, and hashing costs microseconds.
    # Job ids are not memoised (each is seen once).
    _memo: dict[str, Assignment] = field(default_factory=dict, repr=False, compare=False)

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def assign(self, context: Mapping[str, Any], job_id: str | None) -> Assignment:
        value = descend(context, self.unit_path)
        source = self.unit
        if value is MISSING or isinstance(value, Mapping | list | tuple):
            if job_id is None:
                control = self.variant(CONTROL)
                return Assignment(self.name, control, "", self.unit,
                                  f"experiment {self.name}: no {self.unit} and no job id: control "
                                  "(a job is assigned by its id)")
            value, source = job_id, "job_id"
        text = value if isinstance(value, str) else repr(value)
        memo = self._memo if source == self.unit else None
        if memo is not None and (hit := memo.get(text)) is not None:
            return hit
        assignment = self._assign(text, source)
        if memo is not None:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[text] = assignment
        return assignment

    def _assign(self, text: str, source: str) -> Assignment:
        unit_hash = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        if self.status == "paused":
            return Assignment(self.name, self.variant(CONTROL), unit_hash, source,
                              f"experiment {self.name} is paused: control")
        if self.status == "concluded":
            assert self.winner is not None
            return Assignment(self.name, self.variant(self.winner), unit_hash, source,
                              f"experiment {self.name} concluded: winner {self.winner}")
        bucket = self.bucket(text)
        chosen = next(v for v in self.variants if v.start <= bucket < v.end)
        by = f"by {source}" if source == self.unit else "by job id (no " + self.unit + ")"
        why = f"experiment {self.name}: variant {chosen.name} (bucket {bucket} of {BUCKETS} {by})"
        return Assignment(self.name, chosen, unit_hash, source, why)

    def bucket(self, unit_value: str) -> int:
        key = f"{self.salt}\x1f{self.name}\x1f{unit_value}".encode("utf-8", "surrogatepass")
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % BUCKETS


@dataclass(frozen=True)
class RuleFacts:
    """What experiment validation needs to know of the rules (kept small to avoid a cycle)."""

    names: frozenset[str]
    tiers: Mapping[str, str]


def compile_experiments(
    value: Any, facts: RuleFacts, problems: list[Problem], *, is_model_id: Any
) -> dict[str, Experiment]:
    """Experiments by the rule they split; every problem appended with its JSON path."""
    if value is None:
        return {}
    if not isinstance(value, list | tuple):
        problems.append(Problem("$.experiments", f"expected a list of experiments, got {kind(value)}"))
        return {}
    out: dict[str, Experiment] = {}
    names: dict[str, str] = {}
    for i, raw in enumerate(value):
        where = f"$.experiments[{i}]"
        exp = _experiment(raw, where, facts, problems, is_model_id)
        if exp is None:
            continue
        if exp.name in names:
            message = f"duplicate experiment name {exp.name!r} (first at {names[exp.name]})"
            problems.append(Problem(f"{where}.name", message))
            continue
        names[exp.name] = where
        if exp.rule in out:
            message = f"rule {exp.rule!r} already has experiment {out[exp.rule].name!r}"
            problems.append(Problem(f"{where}.rule", message))
            continue
        out[exp.rule] = exp
    return out


def _experiment(
    raw: Any, where: str, facts: RuleFacts, problems: list[Problem], is_model_id: Any
) -> Experiment | None:
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, f"expected an experiment object, got {kind(raw)}"))
        return None
    before = len(problems)
    _unknown(raw, _KEYS, where, problems)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        message = f"expected a name of letters, digits, '.', '_', '-', got {show(name)}"
        problems.append(Problem(f"{where}.name", message))
    rule = raw.get("rule")
    if not isinstance(rule, str) or rule not in facts.names:
        known = ", ".join(sorted(facts.names))
        problems.append(Problem(f"{where}.rule", f"unknown rule {show(rule)} (rules: {known})"))
    status = raw.get("status", "running")
    if status not in STATUSES:
        message = f"expected one of {', '.join(STATUSES)}, got {show(status)}"
        problems.append(Problem(f"{where}.status", message))
    unit = raw.get("unit", "user_id")
    path = parse_path(unit) if isinstance(unit, str) else None
    if path is None:
        message = f"expected a context field path such as 'user_id', got {show(unit)}"
        problems.append(Problem(f"{where}.unit", message))
    salt = raw.get("salt", "")
    if not isinstance(salt, str):
        problems.append(Problem(f"{where}.salt", f"expected a string, got {kind(salt)}"))
    variants = _variants(raw.get("variants"), f"{where}.variants", facts, problems, is_model_id)
    winner = raw.get("winner")
    names = {v.name for v in variants}
    if status == "concluded" and (not isinstance(winner, str) or winner not in names):
        message = f"a concluded experiment names its winner, one of {sorted(names)}; got {show(winner)}"
        problems.append(Problem(f"{where}.winner", message))
    elif status != "concluded" and winner is not None:
        problems.append(Problem(f"{where}.winner", "only a concluded experiment has a winner"))
    if len(problems) > before or path is None:
        return None
    return Experiment(name, rule, status, unit, path, salt, variants, winner)  # type: ignore[arg-type]


def _variants(
    value: Any, where: str, facts: RuleFacts, problems: list[Problem], is_model_id: Any
) -> tuple[Variant, ...]:
    if not isinstance(value, list | tuple) or len(value) < 2:
        problems.append(Problem(where, f"expected a list of at least two variants, got {show(value)}"))
        return ()
    out: list[Variant] = []
    start = 0
    seen: set[str] = set()
    total = 0
    for i, raw in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(raw, Mapping):
            problems.append(Problem(here, f"expected a variant object, got {kind(raw)}"))
            continue
        _unknown(raw, _VARIANT_KEYS, here, problems)
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            problems.append(Problem(f"{here}.name", f"expected a non-empty string, got {show(name)}"))
            continue
        if name in seen:
            problems.append(Problem(f"{here}.name", f"duplicate variant name {name!r}"))
        seen.add(name)
        weight = raw.get("weight")
        if type(weight) is not int or not 0 <= weight <= 100:
            problems.append(Problem(f"{here}.weight", f"expected a whole percent 0-100, got {show(weight)}"))
            weight = 0
        total += weight
        overrides = {k for k in raw if k not in ("name", "weight")}
        if name == CONTROL and overrides:
            message = f"control keeps the rule's decision; remove {', '.join(sorted(overrides))}"
            problems.append(Problem(here, message))
        end = start + weight * PER_WEIGHT
        out.append(_variant(raw, name, start, end, here, facts, problems, is_model_id))
        start += weight * PER_WEIGHT
    if CONTROL not in seen:
        problems.append(Problem(where, "one variant must be named 'control' (it keeps the rule's decision)"))
    if total != 100:
        problems.append(Problem(where, f"the weights must add up to 100 (percent), they add up to {total}"))
    return tuple(out)


def _variant(
    raw: Mapping[str, Any], name: str, start: int, end: int, where: str, facts: RuleFacts,
    problems: list[Problem], is_model_id: Any,
) -> Variant:
    model = None
    if "model" in raw and "tier" in raw:
        problems.append(Problem(where, 'give "model" or "tier", not both'))
    elif "model" in raw:
        if is_model_id(raw["model"]):
            model = raw["model"]
        else:
            message = f"not a model id (author/slug[:variant]): {show(raw['model'])}"
            problems.append(Problem(f"{where}.model", message))
    elif "tier" in raw:
        if isinstance(raw["tier"], str) and raw["tier"] in facts.tiers:
            model = facts.tiers[raw["tier"]]
        else:
            message = f"unknown tier {show(raw['tier'])} (known: {', '.join(facts.tiers)})"
            problems.append(Problem(f"{where}.tier", message))
    fallbacks: tuple[str, ...] | None = None
    if "fallbacks" in raw:
        fallbacks = tuple(_fallbacks(raw["fallbacks"], f"{where}.fallbacks", facts, problems, is_model_id))
    max_tokens = raw.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens <= 0):
        message = f"expected a positive integer, got {show(max_tokens)}"
        problems.append(Problem(f"{where}.max_tokens", message))
        max_tokens = None
    params = check_params(raw["params"], f"{where}.params", problems) if "params" in raw else None
    provider = check_provider(raw["provider"], f"{where}.provider", problems) if "provider" in raw else None
    return Variant(name, start, end, model, fallbacks, max_tokens, params, provider)


def _unknown(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str, problems: list[Problem]) -> None:
    for key in raw:
        if key not in allowed:
            message = f"unknown key {key!r} (expected one of {', '.join(allowed)})"
            problems.append(Problem(child_path(where, str(key)), message))


def _fallbacks(
    value: Any, where: str, facts: RuleFacts, problems: list[Problem], is_model_id: Any
) -> list[str]:
    if not isinstance(value, list | tuple):
        problems.append(Problem(where, f"expected a list of model ids or tier names, got {kind(value)}"))
        return []
    out = []
    for i, entry in enumerate(value):
        if isinstance(entry, str) and "/" in entry and is_model_id(entry):
            out.append(entry)
        elif isinstance(entry, str) and entry in facts.tiers:
            out.append(facts.tiers[entry])
        else:
            problems.append(Problem(f"{where}[{i}]", f"not a model id or a known tier: {show(entry)}"))
    return out
