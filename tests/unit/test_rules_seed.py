"""The shipped rules decide exactly like the seed's hand-written rules engine.

The seed (``RoutingRule`` with lambdas, ``evaluate_rules``) is reproduced verbatim below, minus
the OpenAI client, and compared with ``config/rules.json`` on thousands of fully specified
contexts. Only fully specified ones: the seed's dataclass fills missing fields with defaults
(``user_tier="free"``, ``budget_remaining=0.0``), while routeq treats a missing field as
"cannot evaluate", on purpose.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.seed import RULES_CONFIG, RoutingContext, evaluate_rules, match_config_rule
from worker.rules import RuleSet, compile_rules, load_rules

# --- the comparison ----------------------------------------------------------------------

TIERS = ("free", "basic", "pro", "enterprise")
TASKS = ("chat", "code", "analysis", "classification", "general")

contexts = st.builds(
    RoutingContext,
    user_tier=st.sampled_from(TIERS),
    task_type=st.sampled_from(TASKS),
    budget_remaining=st.one_of(
        st.sampled_from([0.0, 0.99, 0.999999, 1.0, 1.000001, 1.01, -0.0, -1.0]),
        st.floats(min_value=0.9, max_value=1.1),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
    prompt_tokens_est=st.integers(min_value=0, max_value=200_000),
    needs_tools=st.booleans(),
    needs_vision=st.booleans(),
    max_latency_ms=st.one_of(st.integers(min_value=2990, max_value=3010), st.integers(0, 120_000)),
)


SHIPPED = Path(__file__).resolve().parents[2] / "config" / "rules.json"


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(SHIPPED)


@settings(max_examples=3000, deadline=None)
@given(ctx=contexts)
@example(ctx=RoutingContext(user_tier="pro", budget_remaining=1.0, max_latency_ms=3000))
@example(ctx=RoutingContext(user_tier="basic", budget_remaining=0.9999999, max_latency_ms=2999))
@example(ctx=RoutingContext(user_tier="enterprise", budget_remaining=0.0, task_type="code"))
def test_shipped_rules_decide_like_the_seed(shipped: RuleSet, ctx: RoutingContext) -> None:
    expected = evaluate_rules(ctx)
    decision = shipped.decide(dataclasses.asdict(ctx))
    assert (decision.rule, decision.model, decision.fallbacks, decision.max_tokens) == (
        expected.name,
        expected.model,
        tuple(expected.fallbacks or ()),
        expected.max_tokens,
    )
    assert decision.trace[-1].rule == expected.name
    assert decision.prompt_tokens_est == ctx.prompt_tokens_est


def test_seed_config_shorthand_decides_like_match_config_rule() -> None:
    """The seed's config form ({"conditions": {...}}, scalar = equals, list = one of) is ours."""
    doc = {
        "rules": [
            {**{k: v for k, v in r.items() if k != "conditions"}, "when": r["conditions"]}
            for r in RULES_CONFIG["rules"]
        ]
    }
    ours = compile_rules(doc)
    ordered = sorted(RULES_CONFIG["rules"], key=lambda r: r["priority"])
    for tier in TIERS:
        for task in TASKS:
            ctx = RoutingContext(user_tier=tier, task_type=task)
            expected = next(r for r in ordered if match_config_rule(ctx, r))
            decision = ours.decide(dataclasses.asdict(ctx))
            assert (decision.rule, decision.model, decision.max_tokens) == (
                expected["name"],
                expected["model"],
                expected.get("max_tokens", 1024),
            )
