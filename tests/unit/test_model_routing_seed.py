"""``config/examples/model-routing.json`` routes exactly like the model-routing seed.

The seed (tests/support/seed_model_routing.py, verbatim minus the client) routes a job with a
task type by ``TASK_ROUTING`` (unknown types to mid) and one without by ``auto_route``'s
``classify_complexity`` of the last user message. The example must pick the same model for
thousands of random conversations, through the worker's own routing step (which fills a missing
task type from its classifier first: the example routes those by complexity all the same) and
through ``RuleSet.decide`` alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from producer_client.contract import Job
from tests.support.procs import REPO
from tests.support.seed_model_routing import MODELS, TASK_ROUTING, auto_route, route_request
from worker.catalog import Catalog
from worker.routing import Policy, route
from worker.rules import RuleSet, load_rules

EXAMPLE = REPO / "config" / "examples" / "model-routing.json"
NOW = datetime.now(UTC)

# Words around the seed's patterns: triggers, near misses ("analyse", "definitely", "classify")
# and case variants, so that every branch and boundary of classify_complexity is hit.
WORDS = (
    "the", "a", "review", "data", "positive", "hello", "Explain", "explain", "EXPLAIN", "analyze",
    "Analyze", "analyse", "compare", "Compared", "why", "WHY", "how", "does", "how does", "trade-off",
    "tradeoff", "trade off", "tradeXoff", "trades", "calculate", "Equation", "formula", "derive",
    "proof", "proofread", "def", "def f():", "definitely", "function", "functions", "class",
    "classify", "classification", "import", "imports", "```", "``", "print(x)", "été", "数据",
)  # fmt: skip
SEPARATORS = (" ", " ", " ", "\n", "\t", "  ", "\u2003", "")


@st.composite
def prompts(draw: st.DrawFn) -> str:
    """Filler text around the 100- and 500-word thresholds, with a few patterns mixed in, each
    followed by its own separator (the code patterns need a space after the keyword)."""
    size = draw(st.one_of(st.integers(0, 20), st.integers(95, 106), st.integers(495, 506)))
    sep = draw(st.sampled_from(SEPARATORS[:-1]))
    words = [f"word{sep}"] * size
    for _ in range(draw(st.integers(0, 3))):
        extra = draw(st.sampled_from(WORDS)) + draw(st.sampled_from(SEPARATORS))
        words.insert(draw(st.integers(0, len(words))), extra)
    return "".join(words)


OTHER_TURNS = st.sampled_from(("calculate the proof", "def f(): explain why", "word " * 600, "", "hello"))


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A system prompt, earlier turns (patterns that must not count), the last user message (a
    string or one text part), sometimes a trailing assistant turn; now and then no user message."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": draw(OTHER_TURNS)}]
    for _ in range(draw(st.integers(0, 2))):
        messages += [{"role": "user", "content": draw(OTHER_TURNS)},
                     {"role": "assistant", "content": draw(OTHER_TURNS)}]
    if draw(st.integers(0, 19)):
        text = draw(prompts())
        as_part = draw(st.booleans())
        messages.append({"role": "user", "content": [{"type": "text", "text": text}] if as_part else text})
    if draw(st.booleans()):
        messages.append({"role": "assistant", "content": draw(OTHER_TURNS)})
    return messages


task_types = st.one_of(
    st.none(), st.just("auto"), st.sampled_from(sorted(TASK_ROUTING)),
    st.sampled_from(("code", "general", "")), st.text(max_size=12),
)


def seed_choice(task_type: str | None, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What the seed calls: route_request for a task type, auto_route without (or for "auto",
    which in routeq asks for classification). The seed reads a string content only, so a single
    text part is handed to it as that string."""
    if task_type is not None and task_type != "auto":
        return route_request(task_type, messages)
    plain = [{**m, "content": m["content"][0]["text"]} if isinstance(m["content"], list) else m
             for m in messages]
    return auto_route(plain)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def example_rules(catalog: Catalog) -> RuleSet:
    return load_rules(EXAMPLE, catalog=catalog)


def test_the_example_names_the_seed_tiers_and_passes_the_catalog_check(example_rules: RuleSet) -> None:
    assert dict(example_rules.tiers) == MODELS
    assert example_rules.models() <= set(Catalog.load().ids())


@settings(max_examples=1500, deadline=None)
@given(task_type=task_types, messages=conversations())
@example(task_type=None, messages=[{"role": "user", "content": "Please analyse this"}])  # not "analyze"
@example(task_type="auto", messages=[{"role": "user", "content": "why? def f(): pass"}])
@example(task_type="chat", messages=[{"role": "user", "content": "derive the formula"}])
@example(task_type="analysis", messages=[{"role": "system", "content": "only a system prompt"}])
@example(task_type=None, messages=[{"role": "system", "content": "calculate"}])
def test_the_worker_routes_like_the_seed(
    example_rules: RuleSet, catalog: Catalog, task_type: str | None, messages: list[dict[str, Any]]
) -> None:
    job = Job.model_validate({"messages": messages, "context": {"task_type": task_type}}, strict=False)
    policy = Policy(example_rules, catalog)
    dumped = [m.model_dump(exclude_none=True) for m in job.messages]
    r = route(policy, job, dumped, now=NOW)
    expected = seed_choice(task_type, messages)
    assert (r.decision.model, r.chain) == (expected["model"], (expected["model"],))
    assert r.skipped == ()
    by_task = task_type is not None and task_type != "auto"
    assert r.decision.rule.startswith("task-" if by_task else "auto-")


@settings(max_examples=1000, deadline=None)
@given(task_type=task_types, messages=conversations())
def test_decide_alone_routes_like_the_seed(
    example_rules: RuleSet, task_type: str | None, messages: list[dict[str, Any]]
) -> None:
    """Without the worker's classifier: a missing task type stays missing, and routes by complexity."""
    context = {} if task_type is None else {"task_type": task_type}
    decision = example_rules.decide(context, messages=messages)
    assert decision.model == seed_choice(task_type, messages)["model"]


@pytest.mark.parametrize("task_type", sorted(TASK_ROUTING))
def test_each_of_the_ten_task_types_goes_to_its_tier(example_rules: RuleSet, task_type: str) -> None:
    complex_prompt = [{"role": "user", "content": "Explain and derive: def f(): pass"}]
    decision = example_rules.decide({"task_type": task_type}, messages=complex_prompt)
    assert decision.model == MODELS[TASK_ROUTING[task_type]]
