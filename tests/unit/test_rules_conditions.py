"""Conditions: every operator's three outcomes, shorthands, nesting, paths and computed values.

Each case goes through the public API: a two-rule set (the rule under test, then a catch-all).
A condition's three-valued result is read from whether ``when`` and ``{"not": when}`` match:
TRUE matches, FALSE matches only negated, UNKNOWN (cannot evaluate) matches neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from worker.rules import Decision, compile_rules


def _decide(when: Mapping[str, Any], context: Mapping[str, Any], **kwargs: Any) -> Decision:
    doc = {
        "rules": [
            {"name": "probe", "priority": 1, "when": when, "model": "a/probe"},
            {"name": "default", "priority": 99, "model": "a/default"},
        ]
    }
    return compile_rules(doc).decide(context, **kwargs)


def truth(when: Mapping[str, Any], context: Mapping[str, Any], **kwargs: Any) -> str:
    matched = _decide(when, context, **kwargs).rule == "probe"
    negated = _decide({"not": when}, context, **kwargs).rule == "probe"
    assert not (matched and negated)
    return "true" if matched else "false" if negated else "unknown"


def why(when: Mapping[str, Any], context: Mapping[str, Any], **kwargs: Any) -> str:
    return _decide(when, context, **kwargs).trace[0].why


OPERATOR_CASES: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    # eq (and its scalar shorthand): JSON equality, so true is not 1 but 1 is 1.0
    ({"x": {"eq": "a"}}, {"x": "a"}, "true"),
    ({"x": {"eq": "a"}}, {"x": "b"}, "false"),
    ({"x": {"eq": "a"}}, {}, "unknown"),
    ({"x": "a"}, {"x": "a"}, "true"),
    ({"x": "a"}, {"x": 1}, "false"),
    ({"x": 1}, {"x": 1.0}, "true"),
    ({"x": 1}, {"x": True}, "false"),
    ({"x": True}, {"x": 1}, "false"),
    ({"x": True}, {"x": True}, "true"),
    ({"x": {"eq": [1, "a"]}}, {"x": [1.0, "a"]}, "true"),
    ({"x": {"eq": {"k": [True]}}}, {"x": {"k": [1]}}, "false"),
    ({"x": "a"}, {"x": None}, "unknown"),  # null counts as missing
    # ne
    ({"x": {"ne": "a"}}, {"x": "b"}, "true"),
    ({"x": {"ne": "a"}}, {"x": "a"}, "false"),
    ({"x": {"ne": "a"}}, {}, "unknown"),
    # in (and the list shorthand)
    ({"x": {"in": ["a", "b"]}}, {"x": "b"}, "true"),
    ({"x": {"in": ["a", "b"]}}, {"x": "c"}, "false"),
    ({"x": {"in": ["a", "b"]}}, {}, "unknown"),
    ({"x": ["a", "b"]}, {"x": "a"}, "true"),
    ({"x": ["a", "b"]}, {"x": ["a"]}, "false"),  # unhashable value: still just "not a member"
    ({"x": [1, "a"]}, {"x": 1.0}, "true"),
    ({"x": [1, "a"]}, {"x": True}, "false"),
    # not_in
    ({"x": {"not_in": ["a", "b"]}}, {"x": "c"}, "true"),
    ({"x": {"not_in": ["a", "b"]}}, {"x": "a"}, "false"),
    ({"x": {"not_in": ["a", "b"]}}, {}, "unknown"),
    # ordering: numbers with numbers, strings with strings, nothing else
    ({"x": {"lt": 3000}}, {"x": 2999}, "true"),
    ({"x": {"lt": 3000}}, {"x": 3000}, "false"),
    ({"x": {"lt": 3000}}, {"x": "x"}, "unknown"),
    ({"x": {"lt": 3000}}, {"x": True}, "unknown"),
    ({"x": {"lt": 3000}}, {"x": float("nan")}, "unknown"),
    ({"x": {"lt": 3000}}, {}, "unknown"),
    ({"x": {"lte": 3000}}, {"x": 3000}, "true"),
    ({"x": {"lte": 3000}}, {"x": 3000.5}, "false"),
    ({"x": {"lte": 3000}}, {"x": [1]}, "unknown"),
    ({"x": {"gt": 1.5}}, {"x": 2}, "true"),
    ({"x": {"gt": 1.5}}, {"x": 1.5}, "false"),
    ({"x": {"gt": 1.5}}, {"x": "2"}, "unknown"),
    ({"x": {"gte": 1.5}}, {"x": 1.5}, "true"),
    ({"x": {"gte": 1.5}}, {"x": -3}, "false"),
    ({"x": {"gte": 1.5}}, {"x": {"a": 1}}, "unknown"),
    ({"x": {"gt": "m"}}, {"x": "z"}, "true"),
    ({"x": {"gt": "m"}}, {"x": "a"}, "false"),
    ({"x": {"gt": "m"}}, {"x": 5}, "unknown"),
    # between: inclusive
    ({"x": {"between": [1, 5]}}, {"x": 1}, "true"),
    ({"x": {"between": [1, 5]}}, {"x": 5.0}, "true"),
    ({"x": {"between": [1, 5]}}, {"x": 5.01}, "false"),
    ({"x": {"between": [1, 5]}}, {"x": "3"}, "unknown"),
    ({"x": {"between": ["a", "m"]}}, {"x": "k"}, "true"),
    ({"x": {"between": ["a", "m"]}}, {"x": "z"}, "false"),
    # regex: re.search
    ({"x": {"regex": "^ab?c$"}}, {"x": "ac"}, "true"),
    ({"x": {"regex": "b"}}, {"x": "abc"}, "true"),
    ({"x": {"regex": "^b"}}, {"x": "abc"}, "false"),
    ({"x": {"regex": "1"}}, {"x": 1}, "unknown"),
    ({"x": {"regex": "a"}}, {}, "unknown"),
    # contains: substring, list membership, object key
    ({"x": {"contains": "ell"}}, {"x": "hello"}, "true"),
    ({"x": {"contains": "xyz"}}, {"x": "hello"}, "false"),
    ({"x": {"contains": 2}}, {"x": [1, 2.0]}, "true"),
    ({"x": {"contains": True}}, {"x": [1, 2]}, "false"),
    ({"x": {"contains": "eu"}}, {"x": {"eu": 1}}, "true"),
    ({"x": {"contains": "us"}}, {"x": {"eu": 1}}, "false"),
    ({"x": {"contains": 1}}, {"x": "a1"}, "unknown"),
    ({"x": {"contains": 1}}, {"x": {"1": 1}}, "unknown"),
    ({"x": {"contains": "a"}}, {"x": 5}, "unknown"),
    ({"x": {"contains": "a"}}, {}, "unknown"),
    # exists: the only operator with a verdict on a missing (or null) field
    ({"x": {"exists": True}}, {"x": 0}, "true"),
    ({"x": {"exists": True}}, {}, "false"),
    ({"x": {"exists": True}}, {"x": None}, "false"),
    ({"x": {"exists": False}}, {}, "true"),
    ({"x": {"exists": False}}, {"x": False}, "false"),
    # several operators on one field: all must hold (Kleene AND)
    ({"x": {"gte": 1, "lt": 5}}, {"x": 3}, "true"),
    ({"x": {"gte": 1, "lt": 5}}, {"x": 5}, "false"),
    ({"x": {"gte": 1, "lt": 5}}, {"x": "3"}, "unknown"),
    ({"x": {"exists": True, "gt": 3}}, {}, "false"),  # definitely absent beats "cannot compare"
    ({"x": {"exists": True, "gt": 3}}, {"x": 4}, "true"),
]


@pytest.mark.parametrize(("when", "context", "expected"), OPERATOR_CASES)
def test_operator(when: dict[str, Any], context: dict[str, Any], expected: str) -> None:
    assert truth(when, context) == expected


def test_every_operator_is_covered() -> None:
    from worker.rules.operators import BUILDERS

    used = {
        op for when, _, _ in OPERATOR_CASES for spec in when.values() if isinstance(spec, dict) for op in spec
    }
    assert used == set(BUILDERS)


@pytest.mark.parametrize(
    ("when", "context", "expected"),
    [
        ({"budget_remaining": {"lt": 1.0}}, {}, "budget_remaining: missing"),
        (
            {"max_latency_ms": {"lt": 3000}},
            {"max_latency_ms": "x"},
            "max_latency_ms: cannot compare str 'x' with 3000",
        ),
        ({"user_tier": "free"}, {"user_tier": "pro"}, "user_tier: 'pro' != 'free'"),
        ({"user_tier": "free"}, {"user_tier": "free"}, "user_tier == 'free'"),
        ({"max_latency_ms": {"lt": 3000}}, {"max_latency_ms": 30000}, "max_latency_ms: 30000 >= 3000"),
        (
            {"user_tier": ["pro", "enterprise"]},
            {"user_tier": "free"},
            "user_tier: 'free' not in ['pro', 'enterprise']",
        ),
        ({"tags.region": {"exists": True}}, {"tags": {}}, "tags.region: missing"),
        (
            {"budget_remaining": {"lt": 1.0}, "user_tier": {"ne": "enterprise"}},
            {"budget_remaining": 0.5, "user_tier": "pro"},
            "budget_remaining: 0.5 < 1.0 and user_tier: 'pro' != 'enterprise'",
        ),
        (
            {"any": [{"a": 1}, {"b": 2}]},
            {"a": 0, "b": 0},
            "a: 0 != 1 and b: 0 != 2",
        ),
    ],
)
def test_why_is_a_true_sentence(when: dict[str, Any], context: dict[str, Any], expected: str) -> None:
    assert why(when, context) == expected


def test_why_truncates_huge_values() -> None:
    assert len(why({"x": "a"}, {"x": "b" * 10_000})) < 100


@pytest.mark.parametrize(
    ("when", "context", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": 1, "b": 2}, "true"),  # several keys: all must hold
        ({"a": 1, "b": 2}, {"a": 1, "b": 3}, "false"),
        ({"all": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, "true"),
        ({"all": [{"a": 1}, {"b": 2}]}, {"a": 0}, "false"),  # FALSE beats UNKNOWN
        ({"all": [{"b": 2}, {"a": 1}]}, {"a": 0}, "false"),  # whatever the order
        ({"all": [{"a": 1}, {"b": 2}]}, {"a": 1}, "unknown"),
        ({"any": [{"a": 1}, {"b": 2}]}, {"b": 2}, "true"),  # TRUE beats UNKNOWN
        ({"any": [{"a": 1}, {"b": 2}]}, {"a": 0, "b": 0}, "false"),
        ({"any": [{"a": 1}, {"b": 2}]}, {"a": 0}, "unknown"),
        ({"not": {"a": 1}}, {"a": 2}, "true"),
        ({"not": {"a": 1}}, {"a": 1}, "false"),
        ({"not": {"a": 1}}, {}, "unknown"),  # not of "cannot evaluate" is still "cannot evaluate"
        ({"not": {"not": {"a": 1}}}, {"a": 1}, "true"),
        ({"all": [{}, {"a": 1}]}, {"a": 1}, "true"),
        (
            {"all": [{"any": [{"t": "x"}, {"not": {"u.v.w": {"in": [1, 2]}}}]}, {"n": {"gt": 0}}]},
            {"t": "y", "u": {"v": {"w": 3}}, "n": 1},
            "true",
        ),
        (
            {"all": [{"any": [{"t": "x"}, {"not": {"u.v.w": {"in": [1, 2]}}}]}, {"n": {"gt": 0}}]},
            {"t": "y", "u": {"v": {"w": 2}}, "n": 1},
            "false",
        ),
    ],
)
def test_composition(when: dict[str, Any], context: dict[str, Any], expected: str) -> None:
    assert truth(when, context) == expected


def test_an_always_true_branch_makes_any_a_catch_all() -> None:
    rules = compile_rules(
        {"rules": [{"name": "any", "priority": 1, "when": {"any": [{}, {"a": 1}]}, "model": "a/b"}]}
    )
    decision = rules.decide({})
    assert (decision.rule, decision.trace[0].why) == ("any", "always")


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"a": {"b": {"c": {"d": "deep"}}}}, "true"),
        ({"a": {"b": {"c": {"d": "other"}}}}, "false"),
        ({"a": {"b": {"c": {}}}}, "unknown"),
        ({"a": {"b": None}}, "unknown"),
        ({"a": {"b": "not an object"}}, "unknown"),
        ({"a": [{"b": 1}]}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_dotted_paths_at_depth(context: dict[str, Any], expected: str) -> None:
    assert truth({"a.b.c.d": "deep"}, context) == expected


def test_tags_region() -> None:
    assert truth({"tags.region": ["eu", "uk"]}, {"tags": {"region": "eu"}}) == "true"
    assert truth({"tags.region": ["eu", "uk"]}, {"tags": {"region": "us"}}) == "false"


def test_hour_and_weekday_use_the_rules_timezone() -> None:
    # Sunday 23:30 UTC is Monday 00:30 in Paris (UTC+1 in November).
    now = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    doc = {
        "timezone": "Europe/Paris",
        "rules": [
            {"name": "night", "priority": 1, "when": {"hour": {"lt": 6}, "weekday": 0}, "model": "a/night"},
            {"name": "default", "priority": 99, "model": "a/day"},
        ],
    }
    paris = compile_rules(doc)
    assert paris.decide({}, now=now).rule == "night"
    utc = compile_rules({**doc, "timezone": "UTC"})
    decision = utc.decide({}, now=now)
    assert decision.rule == "default"
    assert decision.trace[0].why == "hour: 23 >= 6"
    # a naive time is taken as UTC
    assert paris.decide({}, now=datetime(2026, 11, 22, 23, 30)).rule == "night"


def test_hour_defaults_to_the_current_time() -> None:
    assert truth({"hour": {"between": [0, 23]}, "weekday": {"between": [0, 6]}}, {}) == "true"


def test_computed_values_shadow_context_fields() -> None:
    when = {"budget.remaining": {"lt": 1}}
    assert truth(when, {}, computed={"budget": {"remaining": 0.5}}) == "true"
    assert truth(when, {"budget": {"remaining": 0.5}}, computed={"budget": {"remaining": 5}}) == "false"
    assert truth(when, {"budget": {"remaining": 0.5}}) == "true"  # no computed value: the context's
    assert truth(when, {}, computed={"budget": {}}) == "unknown"
    assert truth({"hour": 3}, {}, computed={"hour": 3}, now=datetime(2026, 1, 1, 12, tzinfo=UTC)) == "true"
    assert truth({"hour": 12}, {"hour": 3}, now=datetime(2026, 1, 1, 12, tzinfo=UTC)) == "true"


def test_prompt_tokens_est_from_context_else_messages() -> None:
    when = {"prompt_tokens_est": {"gt": 100}}
    long = [{"role": "user", "content": "x" * 600}]
    assert truth(when, {"prompt_tokens_est": 500}) == "true"
    assert truth(when, {"prompt_tokens_est": 5}, messages=long) == "false"
    assert truth(when, {}, messages=long) == "true"
    assert truth(when, {"prompt_tokens_est": None}, messages=long) == "true"
    assert truth(when, {"prompt_tokens_est": "lots"}, messages=long) == "true"  # unusable: estimated
    assert truth(when, {}) == "false"
    decision = _decide(when, {"prompt_tokens_est": 12.2})
    assert decision.prompt_tokens_est == 13


def test_outcomes_remembered_per_value_stay_correct() -> None:
    """The per-field outcome memo must never confuse 1, 1.0 and True."""
    rules = compile_rules(
        {
            "rules": [
                {"name": "one", "priority": 1, "when": {"x": 1}, "model": "a/one"},
                {"name": "default", "priority": 99, "model": "a/default"},
            ]
        }
    )
    for _ in range(3):
        assert rules.decide({"x": 1}).rule == "one"
        assert rules.decide({"x": True}).rule == "default"
        assert rules.decide({"x": 1.0}).rule == "one"
        assert rules.decide({"x": "1"}).rule == "default"
    many = [rules.decide({"x": i}).rule for i in range(2000)]
    assert many.count("one") == 1


def test_huge_values_give_verdicts_and_short_reasons() -> None:
    huge = 10**5000  # its repr is refused by Python (int max str digits)
    assert truth({"x": {"lt": 5}}, {"x": huge}) == "false"
    assert truth({"x": "a"}, {"x": huge}) == "false"
    assert why({"x": {"lt": 5}}, {"x": huge}) == "x: <int of 16610 bits> >= 5"
    assert len(why({"x": {"gt": 1}}, {"x": list(range(100_000))})) < 100
