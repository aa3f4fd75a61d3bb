"""The seed's rules engine (seeds/000: lambdas over a dataclass), re-implemented as the baseline.

Kept as written in the seed, including the sort of RULES on every call, so the comparison is
with what the product card started from, not with a tuned variant of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RoutingContext:
    user_tier: str = "free"
    task_type: str = "general"
    budget_remaining: float = 0.0
    prompt_tokens_est: int = 0
    needs_tools: bool = False
    needs_vision: bool = False
    max_latency_ms: int = 30000


@dataclass
class RoutingRule:
    name: str
    priority: int
    condition: Callable[[RoutingContext], bool]
    model: str
    fallbacks: list[str] = field(default_factory=list)
    max_tokens: int = 1024

    def matches(self, ctx: RoutingContext) -> bool:
        try:
            return self.condition(ctx)
        except Exception:
            return False


RULES = [
    RoutingRule("free-tier", 1, lambda c: c.user_tier == "free", "google/gemma-2-9b-it:free",
                ["meta-llama/llama-3.1-8b-instruct"], 512),
    RoutingRule("low-budget", 2, lambda c: c.budget_remaining < 1.0 and c.user_tier != "enterprise",
                "openai/gpt-4o-mini", ["meta-llama/llama-3.1-8b-instruct"], 512),
    RoutingRule("tools-required", 3, lambda c: c.needs_tools, "openai/gpt-4o",
                ["anthropic/claude-3.5-sonnet"]),
    RoutingRule("vision-required", 4, lambda c: c.needs_vision, "openai/gpt-4o",
                ["anthropic/claude-3.5-sonnet", "google/gemini-2.0-flash-001"]),
    RoutingRule("code-tasks", 5, lambda c: c.task_type == "code", "anthropic/claude-3.5-sonnet",
                ["openai/gpt-4o"]),
    RoutingRule("low-latency", 6, lambda c: c.max_latency_ms < 3000, "openai/gpt-4o-mini",
                ["anthropic/claude-3-haiku"]),
    RoutingRule("enterprise-default", 7, lambda c: c.user_tier == "enterprise", "anthropic/claude-3.5-sonnet",
                ["openai/gpt-4o", "openai/gpt-4o-mini"]),
    RoutingRule("default", 99, lambda c: True, "openai/gpt-4o-mini", ["meta-llama/llama-3.1-8b-instruct"]),
]


def evaluate_rules(ctx: RoutingContext) -> RoutingRule:
    """Find the first matching rule (sorted by priority)."""
    sorted_rules = sorted(RULES, key=lambda r: r.priority)
    for rule in sorted_rules:
        if rule.matches(ctx):
            return rule
    return sorted_rules[-1]
