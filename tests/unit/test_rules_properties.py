"""Invariants on arbitrary input: decide never raises and always ends on a rule; loading
either succeeds or raises RulesError with located problems, nothing else."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.rules import RulesError, RuleSet, compile_rules, load_rules

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "rules.json"
FIELDS = (
    "user_id", "tenant", "user_tier", "task_type", "needs_tools", "needs_vision", "max_latency_ms",
    "prompt_tokens_est", "budget_remaining", "tags", "hour", "weekday", "budget",
)  # fmt: skip

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["free", "pro", "enterprise", "code", "eu", "x"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(["region", "remaining", "a", "b"]), st.text(max_size=5)),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=6,
)
contexts = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), json_values, max_size=8)
messages = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "system", "assistant"]), "content": json_values}
        ),
        st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    ),
    max_size=4,
)
moments = st.one_of(
    st.none(),
    st.builds(
        lambda dt, minutes: (
            dt if minutes is None else dt.replace(tzinfo=timezone(timedelta(minutes=minutes)))
        ),
        st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
        st.one_of(st.none(), st.integers(-720, 720)),
    ),
)

EVERY_FEATURE = {
    "timezone": "America/New_York",
    "tiers": {"mid": "openai/gpt-4o-mini", "budget": "meta-llama/llama-3.1-8b-instruct"},
    "rules": [
        {"name": "regex", "priority": 1, "when": {"user_id": {"regex": "^vip-"}}, "model": "a/b"},
        {"name": "contains", "priority": 2, "when": {"tags.labels": {"contains": "urgent"}}, "model": "a/c"},
        {
            "name": "between",
            "priority": 3,
            "when": {"budget.remaining": {"between": [0, 0.5]}},
            "model": "a/d",
        },
        {
            "name": "nested",
            "priority": 4,
            "when": {
                "any": [
                    {"not": {"tenant": ["acme", "initech"]}},
                    {"all": [{"hour": {"gte": 9}}, {"weekday": {"lt": 5}}]},
                ]
            },
            "tier": "mid",
            "fallbacks": ["budget"],
        },
        {
            "name": "exists",
            "priority": 5,
            "when": {"tags.region": {"exists": False}, "prompt_tokens_est": {"gt": 10}},
            "model": "a/e",
        },
        {"name": "default", "priority": 99, "when": {}, "tier": "budget"},
    ],
}


@pytest.fixture(scope="module", params=["shipped", "every-feature"])
def rules(request: pytest.FixtureRequest) -> RuleSet:
    return load_rules(SHIPPED) if request.param == "shipped" else compile_rules(EVERY_FEATURE)


@settings(max_examples=200, deadline=None)
@given(context=contexts, msgs=messages, now=moments, computed=st.one_of(st.none(), contexts))
def test_decide_never_raises_and_ends_on_the_first_match(
    rules: RuleSet,
    context: dict[str, Any],
    msgs: list[Any],
    now: datetime | None,
    computed: dict[str, Any] | None,
) -> None:
    decision = rules.decide(context, messages=msgs, now=now, computed=computed)
    names = [r.name for r in rules.rules]
    trace = decision.trace
    assert [t.rule for t in trace] == names[: len(trace)]
    assert trace[-1].matched and not any(t.matched for t in trace[:-1])
    winner = rules.rules[len(trace) - 1]
    assert (decision.rule, decision.model, decision.fallbacks, decision.max_tokens) == (
        winner.name,
        winner.model,
        winner.fallbacks,
        winner.max_tokens,
    )
    assert decision.model not in decision.fallbacks
    assert decision.prompt_tokens_est >= 0
    assert all(isinstance(t.why, str) and t.why for t in trace)
    orjson.dumps(decision.to_dict())
    if now is not None:  # deterministic: the per-rule memos must not leak state between calls
        assert rules.decide(context, messages=msgs, now=now, computed=computed) == decision


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_loading_a_mutated_document_fails_only_with_located_problems(data: st.DataObject) -> None:
    doc: Any = copy.deepcopy(EVERY_FEATURE)
    # walk to a random node and replace it (or one of its keys' values) with arbitrary JSON
    node, path = doc, "$"
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        if not isinstance(node[key], dict | list):
            break
        node, path = node[key], f"{path}/{key}"
    if isinstance(node, dict):
        node[data.draw(st.sampled_from([*node, "extra", "when", "gtx"]))] = data.draw(json_values)
    elif isinstance(node, list) and node:
        node[data.draw(st.integers(0, len(node) - 1))] = data.draw(json_values)
    try:
        compile_rules(doc)
    except RulesError as exc:
        assert exc.problems
        assert all(p.path.startswith("$") and p.message for p in exc.problems)


@settings(max_examples=200, deadline=None)
@given(doc=json_values)
def test_loading_arbitrary_json_fails_only_with_rules_error(doc: Any) -> None:
    with pytest.raises(RulesError):
        compile_rules(doc)
