"""The shipped rules decide exactly like the seed's hand-written rules engine.

The seed (``RoutingRule`` with lambdas, ``evaluate_rules``) is reproduced verbatim below, minus
the OpenAI client, and compared with ``config/rules.json`` on thousands of fully specified
contexts. Only fully specified ones: the seed's dataclass fills missing fields with defaults
(``user_tier="free"``, ``budget_remaining=0.0``), while routeq treats a missing field as
"cannot evaluate", on purpose.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.rules import RuleSet, compile_rules, load_rules

# --- the seed, as written (000_0def6440504a041c.txt) -------------------------------------


@dataclass
class RoutingContext:
    user_tier: str = "free"  # "free" | "basic" | "pro" | "enterprise"
    task_type: str = "general"  # "chat" | "code" | "analysis" | "classification"
    budget_remaining: float = 0.0  # Remaining daily budget in dollars
    prompt_tokens_est: int = 0  # Estimated prompt tokens
    needs_tools: bool = False  # Requires function calling
    needs_vision: bool = False  # Requires image input
    max_latency_ms: int = 30000  # Latency SLA


@dataclass
class RoutingRule:
    name: str
    priority: int  # Lower = higher priority
    condition: Callable[[RoutingContext], bool]
    model: str
    fallbacks: list[str] | None = None
    max_tokens: int = 1024

    def matches(self, ctx: RoutingContext) -> bool:
        try:
            return self.condition(ctx)
        except Exception:
            return False


RULES = [
    RoutingRule(
        name="free-tier",
        priority=1,
        condition=lambda ctx: ctx.user_tier == "free",
        model="google/gemma-2-9b-it:free",
        fallbacks=["meta-llama/llama-3.1-8b-instruct"],
        max_tokens=512,
    ),
    RoutingRule(
        name="low-budget",
        priority=2,
        condition=lambda ctx: ctx.budget_remaining < 1.0 and ctx.user_tier != "enterprise",
        model="openai/gpt-4o-mini",
        fallbacks=["meta-llama/llama-3.1-8b-instruct"],
        max_tokens=512,
    ),
    RoutingRule(
        name="tools-required",
        priority=3,
        condition=lambda ctx: ctx.needs_tools,
        model="openai/gpt-4o",
        fallbacks=["anthropic/claude-3.5-sonnet"],
    ),
    RoutingRule(
        name="vision-required",
        priority=4,
        condition=lambda ctx: ctx.needs_vision,
        model="openai/gpt-4o",
        fallbacks=["anthropic/claude-3.5-sonnet", "google/gemini-2.0-flash-001"],
    ),
    RoutingRule(
        name="code-tasks",
        priority=5,
        condition=lambda ctx: ctx.task_type == "code",
        model="anthropic/claude-3.5-sonnet",
        fallbacks=["openai/gpt-4o"],
    ),
    RoutingRule(
        name="low-latency",
        priority=6,
        condition=lambda ctx: ctx.max_latency_ms < 3000,
        model="openai/gpt-4o-mini",
        fallbacks=["anthropic/claude-3-haiku"],
    ),
    RoutingRule(
        name="enterprise-default",
        priority=7,
        condition=lambda ctx: ctx.user_tier == "enterprise",
        model="anthropic/claude-3.5-sonnet",
        fallbacks=["openai/gpt-4o", "openai/gpt-4o-mini"],
    ),
    RoutingRule(
        name="default",
        priority=99,
        condition=lambda ctx: True,  # Always matches
        model="openai/gpt-4o-mini",
        fallbacks=["meta-llama/llama-3.1-8b-instruct"],
    ),
]


def evaluate_rules(ctx: RoutingContext) -> RoutingRule:
    """Find the first matching rule (sorted by priority)."""
    sorted_rules = sorted(RULES, key=lambda r: r.priority)
    for rule in sorted_rules:
        if rule.matches(ctx):
            return rule
    return sorted_rules[-1]  # Default catch-all


RULES_CONFIG: dict[str, list[dict[str, Any]]] = {
    "rules": [
        {
            "name": "free-tier",
            "priority": 1,
            "conditions": {"user_tier": "free"},
            "model": "google/gemma-2-9b-it:free",
            "max_tokens": 512,
        },
        {
            "name": "code-pro",
            "priority": 5,
            "conditions": {"task_type": "code", "user_tier": ["pro", "enterprise"]},
            "model": "anthropic/claude-3.5-sonnet",
            "max_tokens": 2048,
        },
        {"name": "default", "priority": 99, "conditions": {}, "model": "openai/gpt-4o-mini"},
    ]
}


def match_config_rule(ctx: RoutingContext, rule_config: dict[str, Any]) -> bool:
    """Match a context against config-driven conditions."""
    conditions = rule_config.get("conditions", {})
    for key, expected in conditions.items():
        actual = getattr(ctx, key, None)
        if isinstance(expected, list):
            if actual not in expected:
                return False
        elif actual != expected:
            return False
    return True


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
