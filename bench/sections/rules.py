"""(a) Rule decision time: ``RuleSet.decide`` over the shipped rules vs the seed's lambdas.

Both engines see the same fixed, seeded mix of contexts (every rule wins some of them), built
before timing. Timing takes the best of several passes, as timeit does: the minimum is the run
least disturbed by the other processes on the box.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.plan import Plan, Say
from bench.procs import REPO
from bench.report import Row
from bench.seed_rules import RoutingContext, evaluate_rules
from worker.rules import RuleSet, load_rules

SECTION = "a rules"
_NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    """One context, as routeq's pipeline passes it and as the seed's dataclass holds it."""

    context: dict[str, Any]
    computed: dict[str, Any]
    seed: RoutingContext


def contexts(n: int, seed: int = 7) -> list[Case]:
    rnd = random.Random(seed)
    out: list[Case] = []
    for i in range(n):
        ctx: dict[str, Any] = {
            "user_id": f"u-{i % 97}",
            "tenant": rnd.choice(["acme", "globex", "initech"]),
            "user_tier": rnd.choice(["free", "basic", "pro", "pro", "enterprise"]),
            "task_type": rnd.choice(["chat", "code", "analysis", "classification", "general"]),
            "needs_tools": rnd.random() < 0.1,
            "needs_vision": rnd.random() < 0.1,
            "max_latency_ms": rnd.choice([1500, 2500, 10_000, 30_000, 30_000]),
            "prompt_tokens_est": rnd.randrange(20, 4000),
            "tags": {"region": rnd.choice(["eu", "us"])},
        }
        budget = rnd.choice([0.5, 5.0, 50.0, 500.0])
        seed_ctx = RoutingContext(
            user_tier=ctx["user_tier"],
            task_type=ctx["task_type"],
            budget_remaining=budget,
            prompt_tokens_est=ctx["prompt_tokens_est"],
            needs_tools=ctx["needs_tools"],
            needs_vision=ctx["needs_vision"],
            max_latency_ms=ctx["max_latency_ms"],
        )
        out.append(Case(ctx, {"budget_remaining": budget}, seed_ctx))
    return out


def _best_us_per_call(passes: int, n: int, one_pass: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter_ns()
        one_pass()
        best = min(best, time.perf_counter_ns() - t0)
    return best / n / 1000


def measure(rules: RuleSet, cases: Sequence[Case], passes: int) -> tuple[float, float, int]:
    """(routeq µs/decide, seed µs/decide, contexts where both pick the same rule)."""

    def routeq_pass() -> None:
        for c in cases:
            rules.decide(c.context, computed=c.computed, now=_NOW)

    def seed_pass() -> None:
        for c in cases:
            evaluate_rules(c.seed)

    routeq_pass()  # warm the trace memo and the interpreter's caches for both
    seed_pass()
    routeq_us = _best_us_per_call(passes, len(cases), routeq_pass)
    seed_us = _best_us_per_call(passes, len(cases), seed_pass)
    agree = sum(
        rules.decide(c.context, computed=c.computed, now=_NOW).rule == evaluate_rules(c.seed).name
        for c in cases
    )
    return routeq_us, seed_us, agree


def with_experiment(path: Path, directory: Path) -> RuleSet:
    """The same rules plus one running experiment splitting the catch-all rule 90/10 by user."""
    doc = orjson.loads(path.read_bytes())
    doc["experiments"] = [{
        "name": "bench-cheap", "rule": "default", "status": "running", "unit": "user_id", "salt": "bench",
        "variants": [{"name": "control", "weight": 90},
                     {"name": "llama", "weight": 10, "model": "meta-llama/llama-3.1-8b-instruct",
                      "fallbacks": ["openai/gpt-4o-mini"]}],
    }]
    out = directory / "rules-experiment.json"
    out.write_bytes(orjson.dumps(doc))
    return load_rules(out)


def experiment_cost(rules: RuleSet, cases: Sequence[Case], passes: int) -> tuple[float, float]:
    """(µs/decide with the experiment, without), timed alternately so both see the same noise."""
    with tempfile.TemporaryDirectory() as tmp:
        split = with_experiment(REPO / "config" / "rules.json", Path(tmp))
    best = {"with": float("inf"), "without": float("inf")}
    for _ in range(passes):
        for name, ruleset in (("without", rules), ("with", split)):
            t0 = time.perf_counter_ns()
            for c in cases:
                ruleset.decide(c.context, computed=c.computed, now=_NOW)
            best[name] = min(best[name], (time.perf_counter_ns() - t0) / len(cases) / 1000)
    return best["with"], best["without"]


def run(plan: Plan, say: Say) -> list[Row]:
    rules = load_rules(REPO / "config" / "rules.json")
    cases = contexts(plan.rules_contexts)
    routeq_us, seed_us, agree = measure(rules, cases, plan.rules_repeats)
    say(f"rules: routeq {routeq_us:.2f} µs/decide, seed {seed_us:.2f} µs/decide, agree {agree}/{len(cases)}")
    split = [c for c in cases if rules.decide(c.context, computed=c.computed, now=_NOW).rule == "default"]
    exp_us, plain_us = experiment_cost(rules, split, plan.rules_repeats)
    return [
        Row(
            SECTION, f"decide over config/rules.json ({len(cases):,} mixed contexts, best of "
            f"{plan.rules_repeats})",
            routeq_us, "µs/decide", "seed evaluate_rules (lambdas)", seed_us, "lower",
            note=f"same rule chosen for {agree}/{len(cases)}; routeq also builds a trace and "
            "the prompt-token estimate",
        ),
        Row(
            SECTION, f"decide in a running experiment (90/10 on the catch-all rule; the {len(split)} "
            "contexts it splits)", exp_us, "µs/decide", "the same rules without it", plain_us, "lower",
            note=f"+{exp_us - plain_us:.2f} µs per decision",
        ),
    ]
