"""Read and validate a rules document into a :class:`RuleSet`, reporting every problem at once.

Validation is strict because a routing policy fails silently otherwise: a misspelt operator
or tier would just never match, and money would go to the wrong model. Each problem names its
JSON path (``$.rules[3].when.user_tier.gtx``) so the fix is obvious from ``routeq rules check``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from worker.budget.config import BudgetConfigError, BudgetDef, parse_budgets
from worker.catalog import Catalog
from worker.rules.cascade import Accept, compile_accept, compile_escalate
from worker.rules.conditions import compile_condition, fields_read
from worker.rules.engine import RuleSet
from worker.rules.experiments import RuleFacts, compile_experiments
from worker.rules.model import Chooser, Rule, freeze, thaw
from worker.rules.models_check import unknown_models
from worker.rules.problems import Problem, RulesError, child_path
from worker.rules.provider import check_params, check_provider
from worker.rules.select import Selector, compile_select
from worker.rules.values import kind, show
from worker.shipped import PolicyFile, as_policy_file, rules_file

DEFAULT_MAX_TOKENS: Final = 1024
SCHEMA_VERSION: Final = 1

_TOP_KEYS: Final = (
    "version", "timezone", "tiers", "defaults", "budgets", "rules", "experiments", "allow_unknown_models",
)  # fmt: skip
_DEFAULT_KEYS: Final = ("max_tokens", "provider", "params")
_RULE_KEYS: Final = (
    "name", "priority", "when", "model", "tier", "select", "fallbacks",
    "max_tokens", "provider", "params", "enabled", "description", "accept", "escalate",
)  # fmt: skip
_HINTS: Final = {"conditions": "when", "condition": "when", "fallback": "fallbacks", "models": "fallbacks"}
_MODEL_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(:[A-Za-z0-9._-]+)?")
_TIER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def load_rules(
    path: str | os.PathLike[str] | PolicyFile | None = None, *, catalog: Catalog | None = None
) -> RuleSet:
    """Read, parse and compile a rules file (default: ``$ROUTEQ_RULES``, else the shipped rules);
    any failure is a :class:`RulesError`."""
    file = rules_file() if path is None else as_policy_file(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise RulesError([Problem("$", f"cannot read {file}: {exc.strerror or exc}")]) from exc
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RulesError([Problem("$", f"invalid JSON in {file}: {exc}")]) from exc
    return compile_rules(doc, source=str(file), catalog=catalog)


@dataclass(frozen=True, slots=True)
class _Defaults:
    max_tokens: int
    provider: Mapping[str, Any] | None
    params: Mapping[str, Any]


def compile_rules(
    doc: Mapping[str, Any], *, source: str = "<memory>", catalog: Catalog | None = None
) -> RuleSet:
    """Validate a parsed document (e.g. from Redis for hot reload) into a :class:`RuleSet`.

    With a ``catalog``, every model id the document names must be in it (see ``models_check``).
    """
    problems: list[Problem] = []
    if not isinstance(doc, Mapping):
        raise RulesError([Problem("$", f"expected an object, got {kind(doc)}")])
    _unknown_keys(doc, _TOP_KEYS, "$", problems)
    version = doc.get("version", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:
        problems.append(
            Problem("$.version", f"unsupported version {show(version)} (expected {SCHEMA_VERSION})")
        )
    timezone = _timezone(doc.get("timezone", "UTC"), problems)
    tiers = _tiers(doc.get("tiers", {}), problems)
    defaults = _defaults(doc.get("defaults", {}), problems)
    budgets = _budgets(doc.get("budgets", []), problems)
    known = _Known(catalog, doc.get("allow_unknown_models") is True)
    rules = _rules(doc.get("rules"), tiers, defaults, problems, known)
    facts = RuleFacts(frozenset(r.name for r in rules), tiers)
    experiments = compile_experiments(doc.get("experiments"), facts, problems, is_model_id=_is_model_id)
    allow_unknown = doc.get("allow_unknown_models", False)
    if not isinstance(allow_unknown, bool):
        message = f"expected true or false, got {kind(allow_unknown)}"
        problems.append(Problem("$.allow_unknown_models", message))
    if catalog is not None:
        problems.extend(unknown_models(doc, catalog))
    version_hash = _version_hash(doc, problems)
    if problems:
        raise RulesError(problems)
    model_ids = frozenset(tiers.values()) | {m for rule in rules for m in rule_models(rule)}
    variants = [v for e in experiments.values() for v in e.variants]
    model_ids |= {m for v in variants for m in (v.model, *(v.fallbacks or ())) if m}
    raw_rules: list[Any] = list(doc.get("rules") or ())  # valid by now
    reads = frozenset().union(*(fields_read(r.get("when", {})) for r in raw_rules if isinstance(r, Mapping)))
    return RuleSet(
        version=version_hash,
        timezone=timezone,
        tiers=freeze(tiers),
        rules=rules,
        budgets=budgets,
        source=source,
        model_ids=model_ids,
        reads=reads,
        experiments=experiments,
    )


def _unknown_keys(
    obj: Mapping[str, Any], allowed: tuple[str, ...], where: str, problems: list[Problem]
) -> None:
    for key in obj:
        if key not in allowed:
            hint = f"; did you mean {_HINTS[key]!r}?" if key in _HINTS else ""
            expected = ", ".join(allowed)
            problems.append(
                Problem(
                    child_path(where, str(key)), f"unknown key {key!r} (expected one of {expected}){hint}"
                )
            )


def _version_hash(doc: Mapping[str, Any], problems: list[Problem]) -> str:
    try:
        canonical = orjson.dumps(thaw(doc), option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        problems.append(Problem("$", f"not serialisable as JSON: {exc}"))
        return ""
    return "sha256:" + hashlib.sha256(canonical).hexdigest()[:12]


def _timezone(value: Any, problems: list[Problem]) -> ZoneInfo:
    if isinstance(value, str) and value:
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    problems.append(
        Problem("$.timezone", f"unknown IANA timezone {show(value)} (e.g. 'UTC', 'Europe/Paris')")
    )
    return ZoneInfo("UTC")


def _is_model_id(value: Any) -> bool:
    return isinstance(value, str) and _MODEL_ID.fullmatch(value) is not None


def _tiers(value: Any, problems: list[Problem]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        problems.append(Problem("$.tiers", f"expected an object of tier name -> model id, got {kind(value)}"))
        return {}
    tiers: dict[str, str] = {}
    for name, model in value.items():
        where = child_path("$.tiers", str(name))
        if not isinstance(name, str) or not _TIER_NAME.fullmatch(name):
            problems.append(Problem(where, f"invalid tier name {name!r}: letters, digits, '.', '_', '-'"))
        elif not _is_model_id(model):
            problems.append(Problem(where, f"not a model id (author/slug[:variant]): {show(model)}"))
        else:
            tiers[name] = model
    return tiers


def _positive_int(value: Any, where: str, problems: list[Problem]) -> int | None:
    if type(value) is int and value > 0:
        return value
    problems.append(Problem(where, f"expected a positive integer, got {show(value)}"))
    return None


def _defaults(value: Any, problems: list[Problem]) -> _Defaults:
    if not isinstance(value, Mapping):
        problems.append(Problem("$.defaults", f"expected an object, got {kind(value)}"))
        value = {}
    _unknown_keys(value, _DEFAULT_KEYS, "$.defaults", problems)
    max_tokens = DEFAULT_MAX_TOKENS
    if "max_tokens" in value:
        max_tokens = _positive_int(value["max_tokens"], "$.defaults.max_tokens", problems) or max_tokens
    provider = (
        check_provider(value["provider"], "$.defaults.provider", problems) if "provider" in value else None
    )
    params = check_params(value.get("params", {}), "$.defaults.params", problems)
    return _Defaults(max_tokens, provider, params or {})


def _budgets(value: Any, problems: list[Problem]) -> tuple[BudgetDef, ...]:
    """Validated once, here, so ``rules check`` and every worker see the same problems."""
    if not isinstance(value, list | tuple):
        problems.append(Problem("$.budgets", f"expected a list, got {kind(value)}"))
        return ()
    try:
        return parse_budgets(list(value))
    except BudgetConfigError as exc:
        problems.extend(Problem(path, message) for path, message in exc.problems)
        return ()


@dataclass(frozen=True, slots=True)
class _Parsed:
    """One rule entry after validation; ``rule`` is None if it had problems."""

    rule: Rule | None
    where: str
    enabled: bool
    catch_all: bool | None  # None: its "when" is invalid, so nobody can tell


@dataclass(frozen=True, slots=True)
class _Known:
    """The catalog rules are checked and ``select`` is compiled against (None: none given)."""

    catalog: Catalog | None
    allow_unknown: bool

    def problem(self, model: str) -> str | None:
        """Why ``model`` may not be named (not in the catalog), or None."""
        if self.catalog is None or self.allow_unknown or not len(self.catalog) or model in self.catalog:
            return None
        return f'model {model!r} is not in the model catalog (set "allow_unknown_models": true to allow it)'


def rule_models(rule: Rule) -> tuple[str, ...]:
    """Every model id a rule can name: its chain, its escalation steps, its select's candidates."""
    chosen = rule.select.ids() if isinstance(rule.select, Selector) else ()
    return (*((rule.model,) if rule.model else ()), *rule.fallbacks, *chosen, *rule.escalate)


def _rules(
    value: Any, tiers: Mapping[str, str], defaults: _Defaults, problems: list[Problem], known: _Known
) -> tuple[Rule, ...]:
    if not isinstance(value, list | tuple) or not value:
        problems.append(Problem("$.rules", f"expected a non-empty list of rules, got {show(value)}"))
        return ()
    parsed: list[_Parsed] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(value):
        where = f"$.rules[{i}]"
        entry = _rule(raw, i, where, tiers, defaults, problems, known)
        parsed.append(entry)
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if isinstance(name, str) and name in seen:
            problems.append(Problem(f"{where}.name", f"duplicate rule name {name!r} (first at {seen[name]})"))
        elif isinstance(name, str):
            seen[name] = where
    enabled = [p for p in parsed if p.enabled]
    _check_catch_all(enabled, problems)
    live = sorted((p.rule for p in enabled if p.rule is not None), key=_order)
    return tuple(live)


def _check_catch_all(enabled: list[_Parsed], problems: list[Problem]) -> None:
    """Matching must always stop somewhere: an enabled catch-all, with no enabled rule after it."""
    if not any(p.catch_all for p in enabled):
        if all(p.catch_all is not None for p in enabled):
            message = 'no catch-all rule: add an enabled rule with "when": {} (e.g. priority 99)'
            problems.append(Problem("$.rules", message))
        return
    valid = sorted(((p.rule, p) for p in enabled if p.rule is not None), key=lambda rp: _order(rp[0]))
    first = next((i for i, (rule, _) in enumerate(valid) if rule.always), None)
    if first is None:
        return  # the catch-all itself has other problems, already reported
    catch_all = valid[first][0]
    for rule, p in valid[first + 1 :]:
        problems.append(
            Problem(
                p.where,
                f"rule {rule.name!r} (priority {rule.priority}) can never match: "
                f"catch-all {catch_all.name!r} (priority {catch_all.priority}) comes first",
            )
        )


def _order(rule: Rule) -> tuple[int, int]:
    """Evaluation order: priority, then position in the file."""
    return (rule.priority, rule.index)


def _rule(
    raw: Any, index: int, where: str, tiers: Mapping[str, str], defaults: _Defaults, problems: list[Problem],
    known: _Known,
) -> _Parsed:
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, f"expected a rule object, got {kind(raw)}"))
        return _Parsed(None, where, False, False)
    before = len(problems)
    _unknown_keys(raw, _RULE_KEYS, where, problems)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem(f"{where}.name", f"expected a non-empty string, got {show(name)}"))
    priority = raw.get("priority")
    if type(priority) is not int:
        problems.append(Problem(f"{where}.priority", f"expected an integer, got {show(priority)}"))
    when_problems = len(problems)
    condition, always = compile_condition(raw.get("when", {}), f"{where}.when", problems)
    catch_all = always if len(problems) == when_problems else None
    model, tier, select = _primary(raw, where, tiers, problems, known)
    fallbacks = _fallbacks(raw.get("fallbacks", []), f"{where}.fallbacks", tiers, problems)
    accept, escalate = _cascade(raw, where, tiers, problems, known, model)
    max_tokens = defaults.max_tokens
    if "max_tokens" in raw:
        max_tokens = _positive_int(raw["max_tokens"], f"{where}.max_tokens", problems) or max_tokens
    provider = defaults.provider
    if "provider" in raw:
        own = check_provider(raw["provider"], f"{where}.provider", problems)
        provider = {**(provider or {}), **(own or {})}
    params = {**defaults.params, **(check_params(raw.get("params", {}), f"{where}.params", problems) or {})}
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(Problem(f"{where}.enabled", f"expected true or false, got {show(enabled)}"))
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(Problem(f"{where}.description", f"expected a string, got {kind(description)}"))
    is_enabled = enabled is not False
    if len(problems) > before or not isinstance(name, str) or type(priority) is not int or model is None:
        return _Parsed(None, where, is_enabled, catch_all)
    rule = Rule(
        name=name,
        priority=priority,
        index=index,
        condition=condition,
        always=always,
        model=model,
        fallbacks=tuple(dict.fromkeys(m for m in fallbacks if m != model)),
        max_tokens=max_tokens,
        provider=None if provider is None else freeze(provider),
        params=freeze(params),
        tier=tier,
        description=description if isinstance(description, str) else "",
        select=select,
        accept=accept,
        escalate=escalate,
    )
    return _Parsed(rule, where, is_enabled, catch_all)


def _primary(
    raw: Mapping[str, Any], where: str, tiers: Mapping[str, str], problems: list[Problem], known: _Known
) -> tuple[str | None, str | None, Chooser | None]:
    """(model id, tier name, selector) from exactly one of ``model`` / ``tier`` / ``select``; a
    select rule's model id is "" (its chain is chosen per job)."""
    if sum(key in raw for key in ("model", "tier", "select")) != 1:
        problems.append(Problem(where, 'expected exactly one of "model" or "tier", or a "select"'))
        return None, None, None
    if "select" in raw:
        name = raw.get("name")
        select = compile_select(
            raw["select"], f"{where}.select", rule=name if isinstance(name, str) else "?",
            catalog=known.catalog, tiers=tiers, allow_unknown=known.allow_unknown, problems=problems,
        )
        return ("", None, select) if select is not None else (None, None, None)
    if "model" in raw:
        model = raw["model"]
        if _is_model_id(model):
            return model, None, None
        hint = f'; for the tier, write "tier": {model!r}' if isinstance(model, str) and model in tiers else ""
        problems.append(
            Problem(f"{where}.model", f"not a model id (author/slug[:variant]): {show(model)}{hint}")
        )
        return None, None, None
    tier = raw["tier"]
    if isinstance(tier, str) and tier in tiers:
        return tiers[tier], tier, None
    problems.append(Problem(f"{where}.tier", _unknown_tier(tier, tiers)))
    return None, None, None


def _cascade(
    raw: Mapping[str, Any], where: str, tiers: Mapping[str, str], problems: list[Problem], known: _Known,
    model: str | None,
) -> tuple[Accept | None, tuple[str, ...]]:
    """The rule's ``accept`` and its resolved ``escalate`` steps (see ``worker.rules.cascade``)."""
    accept = None
    if "accept" in raw:
        name = raw.get("name")
        label = name if isinstance(name, str) else ""
        accept = compile_accept(raw["accept"], f"{where}.accept", label, problems)
    if "escalate" not in raw:
        return accept, ()
    if "accept" not in raw:
        problems.append(Problem(f"{where}.escalate", 'escalating needs an "accept" to judge answers by'))
    steps = compile_escalate(
        raw["escalate"], f"{where}.escalate", tiers, problems,
        is_model_id=_is_model_id, known=known.problem, own=model or None,
    )
    return accept, steps


def _unknown_tier(name: Any, tiers: Mapping[str, str]) -> str:
    known = ", ".join(tiers) or "none defined in $.tiers"
    return f"unknown tier {show(name)} (known: {known})"


def _fallbacks(value: Any, where: str, tiers: Mapping[str, str], problems: list[Problem]) -> list[str]:
    """Resolved model ids: an entry with "/" is a model id, anything else a tier name."""
    if not isinstance(value, list | tuple):
        problems.append(Problem(where, f"expected a list of model ids or tier names, got {kind(value)}"))
        return []
    models: list[str] = []
    for i, entry in enumerate(value):
        here = f"{where}[{i}]"
        if isinstance(entry, str) and "/" in entry:
            if _is_model_id(entry):
                models.append(entry)
            else:
                problems.append(Problem(here, f"not a model id (author/slug[:variant]): {show(entry)}"))
        elif isinstance(entry, str) and entry in tiers:
            models.append(tiers[entry])
        else:
            problems.append(Problem(here, _unknown_tier(entry, tiers)))
    return models
