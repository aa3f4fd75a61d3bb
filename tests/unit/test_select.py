"""``select`` in rules: choosing a chain by price and capability from the model catalog.

Expectations are computed by hand from the shipped catalog (config/models.json), per million
tokens (prompt/completion): gemma-2-9b-it:free 0/0 (8k, no tools), gemma-2-9b-it 0.03/0.09 (8k,
no tools), mistral-small 0.05/0.08 (32k), llama-3.1-8b 0.06/0.06 (131k), gemini-2.0-flash
0.10/0.40 (1M, images), llama-3.1-70b 0.12/0.30, gpt-4o-mini 0.15/0.60 (images), claude-3-haiku
0.25/1.25 (200k, images), deepseek-chat 0.30/0.88, o3-mini 1.10/4.40 (200k), gpt-4o 2.50/10
(images), claude-3.5-sonnet 3/15 (200k, images), o1 15/60 (200k, images). Every model but the
two gemmas takes tools.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer_client.contract import Job
from worker.catalog import Catalog, ModelInfo
from worker.routing import Policy, route, skip_text
from worker.rules import RulesError, RuleSet, compile_rules
from worker.rules.model import JobNeeds
from worker.rules.select import Selector

TIERS = {"budget": "meta-llama/llama-3.1-8b-instruct", "mid": "openai/gpt-4o-mini"}
SHIPPED = Catalog.load()


def rules_with(select: Any, catalog: Catalog | None = SHIPPED, **rule: Any) -> RuleSet:
    doc = {"tiers": TIERS, "rules": [
        {"name": "pick", "priority": 1, "when": {}, "select": select, "max_tokens": 1000, **rule},
    ]}
    return compile_rules(doc, catalog=catalog)


def decide(rules: RuleSet, prompt: int, **needs: Any) -> Any:
    return rules.decide({"prompt_tokens_est": prompt}, needs=JobNeeds(**needs))


def test_cheapest_tool_capable_models_by_expected_cost() -> None:
    rules = rules_with({"needs": {"tools": True}, "exclude_free": True})
    d = decide(rules, 1000)  # 1000 prompt + 1000 completion tokens: the sum of both prices counts
    assert d.chain == ("meta-llama/llama-3.1-8b-instruct", "mistralai/mistral-small-24b-instruct-2501",
                       "meta-llama/llama-3.1-70b-instruct")
    chose = d.trace[-1]
    assert (chose.rule, chose.matched) == ("pick/select", True)
    assert chose.why == (
        "chose 3 of 11 by expected cost (~1000 prompt + 1000 completion tokens): "
        "meta-llama/llama-3.1-8b-instruct $0.00012000, mistralai/mistral-small-24b-instruct-2501 "
        "$0.00013000, meta-llama/llama-3.1-70b-instruct $0.00042000"
    )
    # A long prompt and a short answer: the prompt price dominates, and mistral wins.
    long = decide(rules, 10_000, max_tokens=100)
    assert long.chain == ("mistralai/mistral-small-24b-instruct-2501", "meta-llama/llama-3.1-8b-instruct",
                          "google/gemini-2.0-flash-001")
    assert "(~10000 prompt + 100 completion tokens)" in long.trace[-1].why
    assert "$0.00050800" in long.trace[-1].why  # 10000 x 0.05/M + 100 x 0.08/M, exactly


def test_context_excludes_models_that_cannot_hold_the_request() -> None:
    rules = rules_with({"exclude_free": True})
    fits = decide(rules, 5000, max_tokens=100)  # 5100 tokens: gemma's 8192 window holds them
    assert fits.model == "google/gemma-2-9b-it"
    too_big = decide(rules, 9000, max_tokens=100)
    assert too_big.chain == ("mistralai/mistral-small-24b-instruct-2501", "meta-llama/llama-3.1-8b-instruct",
                             "google/gemini-2.0-flash-001")
    assert ("pick/select", False, "excluded 1, context 8192 or less, too small for the request: "
            "google/gemma-2-9b-it") in [(t.rule, t.matched, t.why) for t in too_big.trace]
    huge = decide(rules, 300_000)  # only gemini's 1M window is left
    assert huge.chain == ("google/gemini-2.0-flash-001",)
    assert any(t.why.startswith("excluded 11, context 200000 or less") for t in huge.trace)


def test_a_fixed_min_context_is_applied_at_load() -> None:
    rules = rules_with({"min_context": 150_000, "order_by": "prompt_price"})
    d = decide(rules, 10)
    assert d.chain == ("google/gemini-2.0-flash-001", "anthropic/claude-3-haiku", "deepseek/deepseek-chat")
    assert ("excluded 7, context < 150000: google/gemma-2-9b-it:free, google/gemma-2-9b-it, "
            "meta-llama/llama-3.1-8b-instruct +4 more") in [t.why for t in d.trace]


def test_order_by_prompt_price_and_free_models() -> None:
    with_free = rules_with({"order_by": "prompt_price"})
    assert decide(with_free, 10).chain == ("google/gemma-2-9b-it:free", "google/gemma-2-9b-it",
                                           "mistralai/mistral-small-24b-instruct-2501")
    paid = rules_with({"order_by": "prompt_price", "exclude_free": True, "top": 4})
    d = decide(paid, 10)
    assert d.chain == ("google/gemma-2-9b-it", "mistralai/mistral-small-24b-instruct-2501",
                       "meta-llama/llama-3.1-8b-instruct", "google/gemini-2.0-flash-001")
    assert "excluded 1, free: google/gemma-2-9b-it:free" in [t.why for t in d.trace]
    assert d.trace[-1].why.startswith("chose 4 of 12 by prompt price: google/gemma-2-9b-it $0.03/M, ")


def test_order_by_context_length_breaks_ties_by_price() -> None:
    rules = rules_with({"order_by": "context_length", "top": 5})
    # gemini (1M), then the 200k models by prompt price: haiku, o3-mini, sonnet, o1.
    assert decide(rules, 10).chain == ("google/gemini-2.0-flash-001", "anthropic/claude-3-haiku",
                                       "openai/o3-mini", "anthropic/claude-3.5-sonnet", "openai/o1")


def test_price_caps_are_per_million_tokens_and_exact() -> None:
    rules = rules_with({"max_price_per_mtok": {"prompt": "1.00", "completion": "4.00"}, "top": 10,
                        "order_by": "prompt_price"})
    d = decide(rules, 10)
    over = {"openai/gpt-4o", "openai/o1", "openai/o3-mini", "anthropic/claude-3.5-sonnet"}
    assert set(SHIPPED.ids()) - set(d.chain) == over
    assert ("excluded 4, over max price (prompt $1.00/M, completion $4.00/M): openai/gpt-4o, openai/o1, "
            "openai/o3-mini +1 more") in [t.why for t in d.trace]
    # o3-mini costs exactly $1.10/M prompt: a cap of 1.10 keeps it, 1.0999999 does not.
    at = rules_with({"from": ["openai/o3-mini"], "max_price_per_mtok": {"prompt": "1.10"}})
    assert decide(at, 10).chain == ("openai/o3-mini",)
    with pytest.raises(RulesError, match="no model in the catalog passes this select"):
        rules_with({"from": ["openai/o3-mini"], "max_price_per_mtok": {"prompt": "1.0999999"}})


def test_job_needs_apply_on_top_of_the_rules() -> None:
    rules = rules_with({"needs": {"tools": True}})
    d = decide(rules, 1000, vision=True)
    assert d.chain == ("google/gemini-2.0-flash-001", "openai/gpt-4o-mini", "anthropic/claude-3-haiku")
    lines = [t.why for t in d.trace]
    assert "excluded 2, no tool support: google/gemma-2-9b-it:free, google/gemma-2-9b-it" in lines
    assert any(w.startswith("excluded 5, job needs vision: no image input: ") for w in lines)
    schema = decide(rules, 1000, structured_outputs=True, vision=True)
    assert "anthropic/claude-3-haiku" not in schema.chain  # Anthropic's models take no JSON schema here
    assert schema.chain[:2] == ("google/gemini-2.0-flash-001", "openai/gpt-4o-mini")


def test_the_job_max_tokens_lowers_the_rules() -> None:
    rules = rules_with({"from": ["google/"], "exclude_free": True})
    assert decide(rules, 7500).chain == ("google/gemini-2.0-flash-001",)  # 7500 + 1000 > 8192
    assert decide(rules, 7500, max_tokens=500).chain[0] == "google/gemma-2-9b-it"  # 8000 fits


def test_from_takes_ids_tiers_and_author_prefixes() -> None:
    rules = rules_with({"from": ["anthropic/", "mid", "openai/o1"], "order_by": "prompt_price", "top": 10})
    assert decide(rules, 10).chain == ("openai/gpt-4o-mini", "anthropic/claude-3-haiku",
                                       "anthropic/claude-3.5-sonnet", "openai/o1")
    assert decide(rules, 10).trace[1].why == (
        "considered 4 of 13 catalog models from [anthropic/, mid, openai/o1]"
    )


def test_the_rules_own_fallbacks_follow_the_selection() -> None:
    rules = rules_with({"exclude_free": True, "top": 2},
                       fallbacks=["anthropic/claude-3.5-sonnet", "meta-llama/llama-3.1-8b-instruct"])
    # gemma and llama tie at $0.00012 for 1000 + 1000 tokens: the lower prompt price goes first.
    # llama, chosen, is not repeated among the fallbacks.
    assert decide(rules, 1000).chain == (
        "google/gemma-2-9b-it", "meta-llama/llama-3.1-8b-instruct", "anthropic/claude-3.5-sonnet",
    )


def test_nothing_left_rejects_with_the_reasons() -> None:
    rules = rules_with({"from": ["google/gemma-2-9b-it", "meta-llama/llama-3.1-8b-instruct"],
                        "min_context": 8000})
    d = decide(rules, 200_000, tools=True)
    assert (d.model, d.chain) == ("", ())
    assert d.excluded == (
        ("google/gemma-2-9b-it", "job needs tools: no tool support"),
        ("meta-llama/llama-3.1-8b-instruct", "context 131072 or less, too small for the request"),
    )
    assert d.trace[-1].why == "no candidate left"
    # Through the worker's routing step, as the pipeline rejects the job (no_eligible_model).
    job = Job.model_validate({"messages": [{"role": "user", "content": "x" * 400_000}],
                              "context": {"needs_tools": True}})
    r = route(Policy(rules, SHIPPED), job, [m.model_dump(exclude_none=True) for m in job.messages],
              now=datetime.now(UTC))
    assert r.chain == ()
    assert skip_text(r.skipped) == (
        "google/gemma-2-9b-it: job needs tools: no tool support; "
        "meta-llama/llama-3.1-8b-instruct: context 131072 or less, too small for the request"
    )
    # With fallbacks of its own the rule still has a chain: nothing to reject.
    kept = rules_with({"from": ["google/gemma-2-9b-it"]}, fallbacks=["mid"])
    assert decide(kept, 9000).chain == ("openai/gpt-4o-mini",)
    assert decide(kept, 9000).excluded == ()


def test_the_worker_passes_the_jobs_own_needs() -> None:
    rules = rules_with({"exclude_free": True})
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    cases = [
        ({"messages": [{"role": "user", "content": [image]}]}, "google/gemini-2.0-flash-001"),
        ({"messages": [{"role": "user", "content": "hi"}],
          "params": {"tools": [{"type": "function", "function": {"name": "f"}}]}},
         "meta-llama/llama-3.1-8b-instruct"),
        # ~507 prompt tokens: with the rule's 1000 completion tokens llama's flat price wins;
        # the job's own cap of 100 makes gemma's cheaper prompt tokens count more.
        ({"messages": [{"role": "user", "content": "x" * 1500}]}, "meta-llama/llama-3.1-8b-instruct"),
        ({"messages": [{"role": "user", "content": "x" * 1500}], "params": {"max_tokens": 100}},
         "google/gemma-2-9b-it"),
    ]
    for body, first in cases:
        job = Job.model_validate(body)
        r = route(Policy(rules, SHIPPED), job, [m.model_dump(exclude_none=True) for m in job.messages],
                  now=datetime.now(UTC))
        assert r.chain[0] == first, body
    google = rules_with({"from": ["google/"], "exclude_free": True})
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    for response_format, first in (({"type": "json_object"}, "google/gemma-2-9b-it"),
                                   (schema, "google/gemini-2.0-flash-001")):
        job = Job.model_validate({"messages": [{"role": "user", "content": "hi"}],
                                  "params": {"response_format": response_format}})
        r = route(Policy(google, SHIPPED), job, [{"role": "user", "content": "hi"}], now=datetime.now(UTC))
        assert r.chain[0] == first


def routers_catalog() -> Catalog:
    doc = dict(SHIPPED.document)
    router = {"id": "openrouter/auto", "name": "Auto", "context_length": 2_000_000,
              "pricing": {"prompt": "-1", "completion": "-1"}, "supported_parameters": ["tools"]}
    data = [*doc["data"], router]
    return Catalog.from_models_json({"data": data})


def test_variable_price_routers_are_never_candidates() -> None:
    catalog = routers_catalog()
    assert "openrouter/auto" in catalog
    rules = rules_with({"order_by": "context_length", "top": 10}, catalog=catalog)
    assert "openrouter/auto" not in decide(rules, 10).chain
    with pytest.raises(RulesError, match=r"\$\.rules\[0\]\.select: no model in the catalog passes this "
                                         r"select \(1 variable price\)"):
        rules_with({"from": ["openrouter/auto"]}, catalog=catalog)


@pytest.mark.parametrize(
    ("select", "path", "message"),
    [
        ([], "$.rules[0].select", "expected an object, got list"),
        ({"form": ["*"]}, "$.rules[0].select.form", "unknown key 'form'"),
        ({"from": []}, "$.rules[0].select.from", "expected a non-empty list"),
        ({"from": ["gold"]}, "$.rules[0].select.from[0]", "got 'gold'"),
        ({"from": ["openai/gpt-5"]}, "$.rules[0].select.from[0]", "not in the model catalog"),
        ({"from": ["nobody/"]}, "$.rules[0].select.from[0]", "no model of author 'nobody/'"),
        ({"needs": {"tool": True}}, "$.rules[0].select.needs.tool", "unknown need 'tool'"),
        ({"needs": {"tools": "yes"}}, "$.rules[0].select.needs.tools", "expected true or false"),
        ({"min_context": 0}, "$.rules[0].select.min_context", 'expected "auto" or a positive integer'),
        ({"min_context": "big"}, "$.rules[0].select.min_context", 'expected "auto"'),
        ({"exclude_free": 1}, "$.rules[0].select.exclude_free", "expected true or false"),
        ({"max_price_per_mtok": {"prompt": 1.0}}, "$.rules[0].select.max_price_per_mtok.prompt",
         'expected a decimal string in USD per million tokens, such as "1.00", got 1.0'),
        ({"max_price_per_mtok": {"prompt": "-1"}}, "$.rules[0].select.max_price_per_mtok.prompt",
         "non-negative decimal"),
        ({"max_price_per_mtok": {"prompt": "1,5"}}, "$.rules[0].select.max_price_per_mtok.prompt",
         "non-negative decimal"),
        ({"max_price_per_mtok": {"request": "1"}}, "$.rules[0].select.max_price_per_mtok.request",
         "unknown price 'request'"),
        ({"max_price_per_mtok": "1.00"}, "$.rules[0].select.max_price_per_mtok", "expected an object"),
        ({"order_by": "price"}, "$.rules[0].select.order_by",
         "expected one of expected_cost, prompt_price, context_length, got 'price'"),
        ({"top": 0}, "$.rules[0].select.top", "expected an integer from 1 to 10"),
        ({"top": 11}, "$.rules[0].select.top", "expected an integer from 1 to 10"),
        ({"top": True}, "$.rules[0].select.top", "expected an integer from 1 to 10"),
        ({"needs": {"vision": True}, "from": ["meta-llama/"]}, "$.rules[0].select",
         "no model in the catalog passes this select (2 no image input)"),
    ],
)
def test_invalid_selects_are_reported_at_their_path(select: Any, path: str, message: str) -> None:
    with pytest.raises(RulesError) as info:
        rules_with(select)
    assert any(p.path == path and message in p.message for p in info.value.problems), info.value.problems


def test_select_excludes_model_and_tier_and_needs_a_catalog() -> None:
    one_of = r'\$\.rules\[0\]: expected exactly one of "model" or "tier", or a "select"'
    with pytest.raises(RulesError, match=one_of):
        rules_with({}, model="openai/gpt-4o")
    with pytest.raises(RulesError, match=r"\$\.rules\[0\]\.select: select needs a model catalog"):
        rules_with({}, catalog=None)


def test_unknown_models_in_from_pass_when_allowed() -> None:
    doc = {"allow_unknown_models": True, "rules": [
        {"name": "pick", "priority": 1, "when": {}, "select": {"from": ["openai/gpt-5", "openai/gpt-4o"]}},
    ]}
    assert compile_rules(doc, catalog=SHIPPED).decide({}).chain == ("openai/gpt-4o",)


def test_select_rule_models_are_in_the_rule_sets_models() -> None:
    rules = rules_with({"from": ["anthropic/"]})
    assert rules.models() == {*TIERS.values(), "anthropic/claude-3.5-sonnet", "anthropic/claude-3-haiku"}


# --- the pruned search is the brute-force search -----------------------------------------------


def _catalog_doc(rnd: random.Random, n: int) -> dict[str, Any]:
    """Few distinct values, so ties and dominance chains are everywhere."""
    data = []
    for i in range(n):
        params = ["tools"] if rnd.random() < 0.6 else []
        if rnd.random() < 0.4:
            params.append("structured_outputs")
        data.append({
            "id": f"a{i % 4}/m{i}", "context_length": rnd.choice((1000, 4000, 8000, 100_000)),
            "pricing": {"prompt": rnd.choice(("0", "0.0000001", "0.0000002", "0.00000025", "0.000001")),
                        "completion": rnd.choice(("0", "0.0000001", "0.0000004", "0.000002")),
                        "request": rnd.choice(("0", "0", "0", "0.0001"))},
            "architecture": {"input_modalities": rnd.choice((["text"], ["text", "image"]))},
            "supported_parameters": params,
        })
    return {"data": data}


def brute_force(catalog: Catalog, order_by: str, top: int, prompt: int, max_tokens: int,
                needs: JobNeeds) -> tuple[str, ...]:
    """Every model, Decimal arithmetic, the documented tie-breaks: no pruning, no scaling."""
    def ok(m: ModelInfo) -> bool:
        return ((not needs.tools or m.supports_tools) and (not needs.vision or m.supports_images)
                and (not needs.structured_outputs or m.supports_structured_outputs)
                and m.context_length >= prompt + max_tokens and not m.is_free)

    order = list(catalog.ids())
    def ties(m: ModelInfo) -> tuple[Any, ...]:
        return (m.prompt_price, m.completion_price, m.request_price, -m.context_length, order.index(m.id))

    keys: dict[str, Any] = {
        "expected_cost": lambda m: (
            prompt * m.prompt_price + max_tokens * m.completion_price + m.request_price, *ties(m)
        ),
        "prompt_price": ties,
        "context_length": lambda m: (-m.context_length, *ties(m)),
    }
    return tuple(m.id for m in sorted(filter(ok, catalog), key=keys[order_by])[:top])


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), top=st.integers(1, 5),
       order_by=st.sampled_from(("expected_cost", "prompt_price", "context_length")))
def test_pruning_never_changes_the_choice(seed: int, order_by: str, top: int) -> None:
    rnd = random.Random(seed)
    catalog = Catalog.from_models_json(_catalog_doc(rnd, rnd.randint(1, 60)))
    doc = {"rules": [{"name": "pick", "priority": 1, "when": {}, "max_tokens": 500,
                      "select": {"order_by": order_by, "top": top, "exclude_free": True}}]}
    try:
        rules = compile_rules(doc, catalog=catalog)
    except RulesError:
        assert all(m.is_free for m in catalog)
        return
    selector = rules.rules[0].select
    assert isinstance(selector, Selector)
    for _ in range(20):
        prompt = rnd.choice((0, 10, 400, 3000, 7600, 50_000, 200_000))
        needs = JobNeeds(rnd.random() < 0.3, rnd.random() < 0.3, rnd.random() < 0.3,
                         rnd.choice((None, 100, 2000)))
        max_tokens = min(500, needs.max_tokens or 500)
        got = rules.decide({"prompt_tokens_est": prompt}, needs=needs).chain
        assert got == brute_force(catalog, order_by, top, prompt, max_tokens, needs)


def test_costs_in_the_trace_are_exact_decimals() -> None:
    rules = rules_with({"from": ["openai/gpt-4o-mini"]})
    why = decide(rules, 3333, max_tokens=777).trace[-1].why
    expected = 3333 * Decimal("0.00000015") + 777 * Decimal("0.0000006")
    assert f"openai/gpt-4o-mini ${expected:f}" in why


def test_a_json_schema_job_drops_models_without_structured_outputs_from_a_fixed_chain() -> None:
    rules = compile_rules({"rules": [{"name": "fixed", "priority": 1, "when": {},
                                      "model": "meta-llama/llama-3.1-8b-instruct",
                                      "fallbacks": ["openai/gpt-4o-mini", "anthropic/claude-3-haiku"]}]},
                          catalog=SHIPPED)
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    every = ["meta-llama/llama-3.1-8b-instruct", "openai/gpt-4o-mini", "anthropic/claude-3-haiku"]
    for response_format, chain in ((None, every), ({"type": "json_object"}, every),
                                   (schema, ["openai/gpt-4o-mini"])):
        job = Job.model_validate({"messages": [{"role": "user", "content": "hi"}],
                                  "params": {"response_format": response_format}})
        r = route(Policy(rules, SHIPPED), job, [{"role": "user", "content": "hi"}], now=datetime.now(UTC))
        assert list(r.chain) == chain, response_format
        if response_format is schema:
            assert {(s.model, s.reason) for s in r.skipped} == {
                ("meta-llama/llama-3.1-8b-instruct", "no structured outputs"),
                ("anthropic/claude-3-haiku", "no structured outputs")}
