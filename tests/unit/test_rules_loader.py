"""Loading rules: every validation problem is reported with its JSON path, all at once."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker.rules import Problem, RulesError, compile_rules, load_rules
from worker.shipped import RULES, rules_file, shipped

DEFAULT = {"name": "default", "priority": 99, "when": {}, "model": "a/default"}
TIERS = {"mid": "openai/gpt-4o-mini", "budget": "meta-llama/llama-3.1-8b-instruct"}


def doc_with(rule: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A valid document with one rule under test before the catch-all, plus top-level overrides."""
    probe = {"name": "probe", "priority": 1, "when": {"x": 1}, "model": "a/probe"}
    if rule is not None:
        probe = {**probe, **rule}
        probe = {k: v for k, v in probe.items() if v is not _DROP}
    return {"version": 1, "tiers": TIERS, "rules": [probe, DEFAULT], **top}


_DROP = object()


def problems_of(doc: Any) -> list[Problem]:
    with pytest.raises(RulesError) as info:
        compile_rules(doc)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return info.value.problems


OPS = "eq, ne, in, not_in, lt, lte, gt, gte, between, regex, contains, exists"

CASES: list[tuple[Any, str, str]] = [
    # top level
    ([], "$", "expected an object"),
    (doc_with(extra=1), "$.extra", "unknown key 'extra'"),
    (doc_with(version=2), "$.version", "unsupported version 2"),
    (doc_with(version=True), "$.version", "unsupported version True"),
    (doc_with(timezone="Mars/Olympus"), "$.timezone", "unknown IANA timezone 'Mars/Olympus'"),
    (doc_with(timezone=5), "$.timezone", "unknown IANA timezone 5"),
    (doc_with(tiers=["a/b"]), "$.tiers", "expected an object"),
    (doc_with(tiers={"mid": "gpt-4o"}), "$.tiers.mid", "not a model id"),
    (doc_with(tiers={"a/b": "a/b"}), '$.tiers["a/b"]', "invalid tier name"),
    (doc_with(defaults={"temperature": 0}), "$.defaults.temperature", "unknown key 'temperature'"),
    (doc_with(defaults={"max_tokens": 0}), "$.defaults.max_tokens", "expected a positive integer, got 0"),
    (
        doc_with(defaults={"provider": {"sort_by": "price"}}),
        "$.defaults.provider.sort_by",
        "unknown provider",
    ),
    (doc_with(defaults={"params": {"model": "x/y"}}), "$.defaults.params.model", "not allowed here"),
    (doc_with(budgets={"daily": 1}), "$.budgets", "expected a list"),
    (doc_with(budgets=[1]), "$.budgets[0]", "must be an object"),
    ({"rules": []}, "$.rules", "expected a non-empty list"),
    ({"rules": {"a": 1}}, "$.rules", "expected a non-empty list"),
    ({"rules": ["default", DEFAULT]}, "$.rules[0]", "expected a rule object"),
    # rule fields
    (doc_with({"conditions": {}}), "$.rules[0].conditions", "did you mean 'when'?"),
    (doc_with({"name": _DROP}), "$.rules[0].name", "expected a non-empty string"),
    (doc_with({"name": "  "}), "$.rules[0].name", "expected a non-empty string"),
    (doc_with({"name": "default"}), "$.rules[1].name", "duplicate rule name 'default' (first at $.rules[0])"),
    (doc_with({"priority": "1"}), "$.rules[0].priority", "expected an integer"),
    (doc_with({"priority": True}), "$.rules[0].priority", "expected an integer"),
    (doc_with({"priority": _DROP}), "$.rules[0].priority", "expected an integer"),
    (doc_with({"tier": "mid"}), "$.rules[0]", 'exactly one of "model" or "tier"'),
    (doc_with({"model": _DROP}), "$.rules[0]", 'exactly one of "model" or "tier"'),
    (doc_with({"model": "gpt-4o"}), "$.rules[0].model", "not a model id (author/slug[:variant]): 'gpt-4o'"),
    (doc_with({"model": "mid"}), "$.rules[0].model", "for the tier, write \"tier\": 'mid'"),
    (doc_with({"model": "a/b/c"}), "$.rules[0].model", "not a model id"),
    (
        doc_with({"model": _DROP, "tier": "gold"}),
        "$.rules[0].tier",
        "unknown tier 'gold' (known: mid, budget)",
    ),
    (doc_with({"fallbacks": "mid"}), "$.rules[0].fallbacks", "expected a list"),
    (doc_with({"fallbacks": ["mid", "gold"]}), "$.rules[0].fallbacks[1]", "unknown tier 'gold'"),
    (doc_with({"fallbacks": ["a/b:x:y"]}), "$.rules[0].fallbacks[0]", "not a model id"),
    (doc_with({"fallbacks": [3]}), "$.rules[0].fallbacks[0]", "unknown tier 3"),
    (doc_with({"max_tokens": 0}), "$.rules[0].max_tokens", "expected a positive integer"),
    (doc_with({"max_tokens": -5}), "$.rules[0].max_tokens", "expected a positive integer"),
    (doc_with({"max_tokens": "512"}), "$.rules[0].max_tokens", "expected a positive integer"),
    (doc_with({"max_tokens": True}), "$.rules[0].max_tokens", "expected a positive integer"),
    (doc_with({"max_tokens": 1.5}), "$.rules[0].max_tokens", "expected a positive integer"),
    (doc_with({"provider": ["openai"]}), "$.rules[0].provider", "expected an object"),
    (doc_with({"provider": {"orders": []}}), "$.rules[0].provider.orders", "unknown provider preference"),
    (
        doc_with({"provider": {"allow_fallbacks": "no"}}),
        "$.rules[0].provider.allow_fallbacks",
        "true or false",
    ),
    (doc_with({"provider": {"order": "openai"}}), "$.rules[0].provider.order", "a list of provider slugs"),
    (doc_with({"provider": {"data_collection": "maybe"}}), "$.rules[0].provider.data_collection", "'allow'"),
    (doc_with({"params": []}), "$.rules[0].params", "expected an object"),
    (doc_with({"params": {"max_tokens": 5}}), "$.rules[0].params.max_tokens", "not allowed here"),
    (doc_with({"params": {"models": []}}), "$.rules[0].params.models", "not allowed here"),
    (doc_with({"params": {"messages": []}}), "$.rules[0].params.messages", "not allowed here"),
    (doc_with({"params": {"provider": {}}}), "$.rules[0].params.provider", "not allowed here"),
    (
        doc_with({"params": {"max_completion_tokens": 9}}),
        "$.rules[0].params.max_completion_tokens",
        "budgets",
    ),
    (doc_with({"enabled": "yes"}), "$.rules[0].enabled", "expected true or false"),
    (doc_with({"description": 5}), "$.rules[0].description", "expected a string"),
    # conditions
    (doc_with({"when": None}), "$.rules[0].when", "expected a condition object, got null"),
    (doc_with({"when": "user_tier == 'free'"}), "$.rules[0].when", "expected a condition object, got str"),
    (
        doc_with({"when": {"user_tier": {"gtx": 1}}}),
        "$.rules[0].when.user_tier.gtx",
        f"unknown operator 'gtx' (expected one of {OPS})",
    ),
    (doc_with({"when": {"tags": {"region": "eu"}}}), "$.rules[0].when.tags.region", "dotted path"),
    (doc_with({"when": {"x": {}}}), "$.rules[0].when.x", "empty operator object"),
    (doc_with({"when": {"a..b": 1}}), '$.rules[0].when["a..b"]', "invalid field path 'a..b'"),
    (doc_with({"when": {".a": 1}}), '$.rules[0].when[".a"]', "invalid field path"),
    (doc_with({"when": {"x": None}}), "$.rules[0].when.x", "null never matches"),
    (doc_with({"when": {"x": ["a", None]}}), "$.rules[0].when.x[1]", "null never matches"),
    (doc_with({"when": {"x": []}}), "$.rules[0].when.x", "expected a non-empty list"),
    (doc_with({"when": {"x": {"in": "abc"}}}), "$.rules[0].when.x.in", "expected a non-empty list"),
    (doc_with({"when": {"x": {"not_in": []}}}), "$.rules[0].when.x.not_in", "expected a non-empty list"),
    (doc_with({"when": {"x": {"regex": "a("}}}), "$.rules[0].when.x.regex", "invalid regular expression"),
    (doc_with({"when": {"x": {"regex": 5}}}), "$.rules[0].when.x.regex", "expected a regular expression"),
    (
        doc_with({"when": {"x": {"between": [1]}}}),
        "$.rules[0].when.x.between",
        "expected [low, high] (2 items)",
    ),
    (doc_with({"when": {"x": {"between": [1, 2, 3]}}}), "$.rules[0].when.x.between", "2 items"),
    (doc_with({"when": {"x": {"between": [5, 1]}}}), "$.rules[0].when.x.between", "low 5 is above high 1"),
    (
        doc_with({"when": {"x": {"between": [1, "z"]}}}),
        "$.rules[0].when.x.between",
        "must both be numbers or both strings",
    ),
    (
        doc_with({"when": {"x": {"between": [1, None]}}}),
        "$.rules[0].when.x.between[1]",
        "a number or a string",
    ),
    (doc_with({"when": {"x": {"lt": [1]}}}), "$.rules[0].when.x.lt", "expected a number or a string"),
    (doc_with({"when": {"x": {"gte": True}}}), "$.rules[0].when.x.gte", "expected a number or a string"),
    (doc_with({"when": {"x": {"exists": 1}}}), "$.rules[0].when.x.exists", "expected true or false"),
    (doc_with({"when": {"x": {"contains": None}}}), "$.rules[0].when.x.contains", "null never matches"),
    (doc_with({"when": {"all": {"x": 1}}}), "$.rules[0].when.all", "expected a list of conditions"),
    (doc_with({"when": {"all": [{"x": 1}, 3]}}), "$.rules[0].when.all[1]", "expected a condition object"),
    (doc_with({"when": {"any": []}}), "$.rules[0].when.any", "an empty 'any' never matches"),
    (doc_with({"when": {"not": {}}}), "$.rules[0].when.not", "never matches"),
    (doc_with({"when": {"not": [1]}}), "$.rules[0].when.not", "expected a condition object"),
    (
        doc_with({"when": {"all": [{"a": 1}, {"any": [{"b": {"gtx": 1}}]}]}}),
        "$.rules[0].when.all[1].any[0].b.gtx",
        "unknown operator 'gtx'",
    ),
    (
        doc_with({"when": {"tags.region": {"gtx": 1}}}),
        '$.rules[0].when["tags.region"].gtx',
        "unknown operator",
    ),
    # the rule set as a whole
    ({"rules": [{"name": "a", "priority": 1, "when": {"x": 1}, "model": "a/b"}]}, "$.rules", "no catch-all"),
    (
        {"rules": [{**DEFAULT, "enabled": False}, {**DEFAULT, "name": "x", "when": {"x": 1}}]},
        "$.rules",
        "no catch-all",
    ),
    (
        {"rules": [DEFAULT, {"name": "late", "priority": 100, "when": {"x": 1}, "model": "a/b"}]},
        "$.rules[1]",
        "rule 'late' (priority 100) can never match: catch-all 'default' (priority 99) comes first",
    ),
    (
        {"rules": [DEFAULT, {"name": "tie", "priority": 99, "when": {"x": 1}, "model": "a/b"}]},
        "$.rules[1]",
        "can never match",
    ),
]


@pytest.mark.parametrize(("doc", "path", "fragment"), CASES)
def test_validation_problem(doc: Any, path: str, fragment: str) -> None:
    problems = problems_of(copy.deepcopy(doc))
    assert [(p.path, fragment in p.message) for p in problems] == [(path, True)], problems


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    when: dict[str, Any] = {"x": 1}
    for _ in range(200):
        when = {"not": when}
    problems = problems_of(doc_with({"when": when}))
    assert any("nested deeper than" in p.message for p in problems)


def test_all_problems_are_reported_at_once() -> None:
    doc = doc_with(
        {"when": {"user_tier": {"gtx": 1}}, "max_tokens": 0, "fallbacks": ["gold"]}, timezone="Nowhere"
    )
    problems = problems_of(doc)
    assert [p.path for p in problems] == [
        "$.timezone",
        "$.rules[0].when.user_tier.gtx",
        "$.rules[0].fallbacks[0]",
        "$.rules[0].max_tokens",
    ]
    assert str(RulesError(problems)).count("\n") == 3


def test_disabled_rules_are_validated_but_not_kept() -> None:
    problems_of(doc_with({"enabled": False, "when": {"x": {"gtx": 1}}}))
    rules = compile_rules(doc_with({"enabled": False}))
    assert [r.name for r in rules.rules] == ["default"]


def test_rules_sort_by_priority_then_file_order() -> None:
    doc = {
        "rules": [
            {"name": "c", "priority": 5, "when": {"x": 1}, "model": "a/c"},
            {"name": "a", "priority": -1, "when": {"x": 1}, "model": "a/a"},
            DEFAULT,
            {"name": "d", "priority": 5, "when": {"x": 1}, "model": "a/d"},
        ]
    }
    rules = compile_rules(doc)
    assert [r.name for r in rules.rules] == ["a", "c", "d", "default"]
    assert [t.rule for t in rules.decide({"x": 1}).trace] == ["a"]
    assert [t.rule for t in rules.decide({"x": 2}).trace] == ["a", "c", "d", "default"]


def test_tiers_resolve_and_fallbacks_dedupe() -> None:
    doc = doc_with(
        {
            "model": _DROP,
            "tier": "mid",
            "fallbacks": [
                "budget",
                "openai/gpt-4o-mini",
                "meta-llama/llama-3.1-8b-instruct",
                "x/y",
                "budget",
            ],
        }
    )
    rules = compile_rules(doc)
    decision = rules.decide({"x": 1})
    assert decision.model == "openai/gpt-4o-mini"
    assert decision.fallbacks == ("meta-llama/llama-3.1-8b-instruct", "x/y")
    assert decision.chain == ("openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct", "x/y")
    assert rules.rules[0].tier == "mid"
    assert rules.models() == {"openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct", "x/y", "a/default"}


def test_model_ids_with_variants_are_accepted() -> None:
    for model in (
        "google/gemma-2-9b-it:free",
        "anthropic/claude-3.5-sonnet:floor",
        "openrouter/auto",
        "01-ai/yi_large",
    ):
        assert compile_rules(doc_with({"model": model})).rules[0].model == model


def test_max_tokens_defaults() -> None:
    assert compile_rules(doc_with()).rules[0].max_tokens == 1024
    assert compile_rules(doc_with(defaults={"max_tokens": 300})).rules[0].max_tokens == 300
    assert compile_rules(doc_with({"max_tokens": 50}, defaults={"max_tokens": 300})).rules[0].max_tokens == 50


def test_provider_and_params_merge_over_defaults_and_are_read_only() -> None:
    doc = doc_with(
        {"provider": {"sort": "price"}, "params": {"temperature": 0, "stop": ["\n"]}},
        defaults={
            "provider": {"order": ["openai"], "sort": "latency"},
            "params": {"temperature": 1, "seed": 7},
        },
    )
    rules = compile_rules(doc)
    decision = rules.decide({"x": 1})
    assert decision.provider == {"order": ("openai",), "sort": "price"}
    assert decision.params == {"temperature": 0, "seed": 7, "stop": ("\n",)}
    with pytest.raises(TypeError):
        decision.params["temperature"] = 2  # type: ignore[index]
    as_dict = decision.to_dict()
    assert as_dict["provider"] == {"order": ["openai"], "sort": "price"}
    assert as_dict["params"] == {"temperature": 0, "seed": 7, "stop": ["\n"]}
    as_dict["params"]["temperature"] = 2  # a copy: the rule set is untouched
    assert rules.decide({"x": 1}).params["temperature"] == 0
    catch_all = rules.decide({"x": 2})
    assert catch_all.provider == {"order": ("openai",), "sort": "latency"}
    assert compile_rules(doc_with()).decide({}).provider is None


def test_decision_to_dict_is_json_ready() -> None:
    rules = compile_rules(
        doc_with({"provider": {"max_price": {"prompt": 1}}, "params": {"temperature": 0.2}})
    )
    decision = rules.decide({"x": 1}, messages=[{"role": "user", "content": "hi"}])
    doc = orjson.loads(orjson.dumps(decision.to_dict()))
    assert set(doc) == {
        "rule", "model", "fallbacks", "chain", "max_tokens", "provider", "params",
        "rules_version", "prompt_tokens_est", "experiment", "trace", "accept", "escalate", "excluded",
    }  # fmt: skip
    assert doc["trace"] == [{"rule": "probe", "matched": True, "why": "x == 1"}]
    assert doc["rules_version"] == rules.version


def test_rule_set_and_decision_are_frozen() -> None:
    rules = compile_rules(doc_with())
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.version = "x"  # type: ignore[misc]
    decision = rules.decide({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.model = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.trace[0].why = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        rules.tiers["mid"] = "x/y"  # type: ignore[index]


def test_version_is_a_hash_of_the_canonical_document(tmp_path: Path) -> None:
    doc = doc_with()
    version = compile_rules(doc).version
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", version)
    reordered = dict(reversed(list(doc.items())))
    spaced = tmp_path / "spaced.json"
    spaced.write_bytes(orjson.dumps(reordered, option=orjson.OPT_INDENT_2))
    assert load_rules(spaced).version == version
    assert compile_rules(doc_with({"max_tokens": 99})).version != version


def test_budgets_are_validated_once_into_definitions() -> None:
    budgets = [{"name": "daily", "scope": "user", "limit_usd": "5.00", "window": "day"}]
    rules = compile_rules(doc_with(budgets=budgets))
    assert [(b.name, b.scope, b.limit_nano, b.window) for b in rules.budgets] == [
        ("daily", "user", 5_000_000_000, "day")
    ]
    budgets[0]["name"] = "changed"  # the rule set holds its own copy
    assert rules.budgets[0].name == "daily"


def test_budget_problems_are_reported_with_the_rules_problems() -> None:
    budgets = [{"name": "daily", "scope": "user", "limit_usd": "5.00", "anything": [1, 2]}]
    with pytest.raises(RulesError) as info:
        compile_rules(doc_with(budgets=budgets))
    paths = {p.path for p in info.value.problems}
    assert paths == {"$.budgets[0].anything", "$.budgets[0].window"}


def test_load_rules_reports_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path / "missing.json")
    assert info.value.problems[0].path == "$"
    assert "cannot read" in info.value.problems[0].message
    broken = tmp_path / "broken.json"
    broken.write_text('{"rules": [')
    with pytest.raises(RulesError) as info:
        load_rules(broken)
    assert "invalid JSON" in str(info.value)


def test_the_default_rules_are_the_shipped_package_data_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ROUTEQ_RULES", raising=False)
    default = rules_file()
    repo_copy = Path(__file__).resolve().parents[2] / "config" / "rules.json"
    assert default.read_bytes() == repo_copy.read_bytes()
    assert load_rules().version == load_rules(shipped(RULES)).version
    monkeypatch.setenv("ROUTEQ_RULES", os.fspath(tmp_path / "mine.json"))
    assert rules_file() == tmp_path / "mine.json"


SEED_RULES = [
    ("free-tier", 1, "google/gemma-2-9b-it:free", ("meta-llama/llama-3.1-8b-instruct",), 512),
    ("low-budget", 2, "openai/gpt-4o-mini", ("meta-llama/llama-3.1-8b-instruct",), 512),
    ("tools-required", 3, "openai/gpt-4o", ("anthropic/claude-3.5-sonnet",), 1024),
    (
        "vision-required",
        4,
        "openai/gpt-4o",
        ("anthropic/claude-3.5-sonnet", "google/gemini-2.0-flash-001"),
        1024,
    ),
    ("code-tasks", 5, "anthropic/claude-3.5-sonnet", ("openai/gpt-4o",), 1024),
    ("low-latency", 6, "openai/gpt-4o-mini", ("anthropic/claude-3-haiku",), 1024),
    ("enterprise-default", 7, "anthropic/claude-3.5-sonnet", ("openai/gpt-4o", "openai/gpt-4o-mini"), 1024),
    ("default", 99, "openai/gpt-4o-mini", ("meta-llama/llama-3.1-8b-instruct",), 1024),
]


def test_shipped_rules_are_the_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTEQ_RULES", raising=False)
    rules = load_rules()
    assert [(r.name, r.priority, r.model, r.fallbacks, r.max_tokens) for r in rules.rules] == SEED_RULES
    assert dict(rules.tiers) == {
        "free": "google/gemma-2-9b-it:free",
        "budget": "meta-llama/llama-3.1-8b-instruct",
        "mid": "openai/gpt-4o-mini",
        "standard": "anthropic/claude-3.5-sonnet",
        "premium": "openai/o1",
    }
    assert str(rules.timezone) == "UTC"
