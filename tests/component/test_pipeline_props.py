"""For any rules file ``routeq rules check`` accepts and any job, the job ends ``succeeded`` or with a
typed error, and no money stays reserved once every job has ended (issue 9, item 2).

Rules files come from a small grammar (conditions on tier, task and capabilities; models, tiers and a
misspelt model id; request params including names routeq reserves; provider preferences; budgets).
Files naming a reserved param must be refused by the loader; the others that load run a few jobs
through the in-process stack (fakeredis with Lua, the emulator, a worker task).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from producer_client.contract import Result
from tests.support.inproc import inproc_stack
from worker.catalog import Catalog
from worker.error_kinds import retryable
from worker.openrouter.models import ChatRequest
from worker.reserved import RESERVED_PARAMS
from worker.rules import RulesError, load_rules

TIERS = {
    "free": "google/gemma-2-9b-it:free",
    "budget": "meta-llama/llama-3.1-8b-instruct",
    "mid": "openai/gpt-4o-mini",
    "premium": "anthropic/claude-3.5-sonnet",
}
MODELS = (
    "openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct", "anthropic/claude-3.5-sonnet", "openai/gpt-4o",
    "google/gemma-2-9b-it:free", "openai/o1", "openai/gpt-5-typo",
)  # fmt: skip
CONDITIONS: dict[str, st.SearchStrategy[Any]] = {
    "user_tier": st.sampled_from(["free", "pro", "enterprise", {"in": ["pro", "enterprise"]},
                                  {"ne": "free"}]),
    "task_type": st.sampled_from(["code", "chat", {"in": ["code", "analysis"]}]),
    "needs_tools": st.booleans(),
    "needs_vision": st.booleans(),
    "max_latency_ms": st.sampled_from([{"lt": 3000}, {"gte": 1000}]),
}
PARAM_NAMES = (
    "temperature", "seed", "top_p", "stop", "frequency_penalty", "transforms",  # free for a rule to set
    "user", "max_tokens", "stream", "models", "provider",  # reserved: the loader must refuse them
)  # fmt: skip
PARAM_VALUES = st.sampled_from([0.5, 1, 7, "x", True, ["END"], None])
PROVIDERS = st.sampled_from([{"allow_fallbacks": False}, {"order": ["OpenAI"]}, {"sort": "price"},
                             {"data_collection": "deny"}])
FAULTS = st.sampled_from([
    {},
    {"seed": 1, "models": {"*": {"error_5xx": 0.3, "rate_limit": 0.2, "retry_after_s": 0}}},
    {"fail_always": ["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"]},
])
TOOL = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
JOBS: list[dict[str, Any]] = [
    {"prompt": "hello there", "context": {"user_tier": "free"}},
    {"prompt": "fix this code", "context": {"user_tier": "pro", "task_type": "code", "user_id": "u-1"}},
    {"prompt": "call the weather tool for Paris", "context": {"user_tier": "pro", "needs_tools": True},
     "params": {"tools": [TOOL]}},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, IMAGE]}],
     "context": {"user_tier": "enterprise", "needs_vision": True, "max_latency_ms": 1000}},
]


def model_or_tier() -> st.SearchStrategy[dict[str, str]]:
    return st.one_of(st.sampled_from(MODELS).map(lambda m: {"model": m}),
                     st.sampled_from(sorted(TIERS)).map(lambda t: {"tier": t}))


@st.composite
def rules_docs(draw: st.DrawFn) -> dict[str, Any]:
    def rule(name: str, priority: int, when: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "priority": priority, "when": when, **draw(model_or_tier())}
        names = st.one_of(st.sampled_from(MODELS), st.sampled_from(sorted(TIERS)))
        fallbacks = draw(st.lists(names, max_size=2))
        if fallbacks:
            out["fallbacks"] = fallbacks
        if draw(st.booleans()):
            out["max_tokens"] = draw(st.sampled_from([16, 256, 0, 200_000]))
        params = draw(st.dictionaries(st.sampled_from(PARAM_NAMES), PARAM_VALUES, max_size=2))
        if params:
            out["params"] = params
        if draw(st.booleans()):
            out["provider"] = draw(PROVIDERS)
        return out

    conditional = [
        rule(f"r{i}", i + 1, dict(draw(st.lists(
            st.one_of(*[st.tuples(st.just(k), v) for k, v in CONDITIONS.items()]), min_size=1, max_size=2))))
        for i in range(draw(st.integers(0, 2)))
    ]
    rules = conditional + ([rule("default", 99, {})] if draw(st.integers(0, 9)) else [])
    budgets = [{"name": "cap", "scope": "global", "window": "total",
                "limit_usd": draw(st.sampled_from(["5", "5", "0.0003"]))}]
    if draw(st.booleans()):
        budgets.append({"name": "daily", "scope": "user", "limit_usd": "1", "window": "day"})
    doc: dict[str, Any] = {"version": 1, "tiers": TIERS, "defaults": {"max_tokens": 256}, "budgets": budgets,
                           "rules": rules}
    if draw(st.booleans()):
        doc["allow_unknown_models"] = True
    return doc


def reserved_params_named(doc: dict[str, Any]) -> list[str]:
    return [f"$.rules[{i}].params.{name}" for i, r in enumerate(doc["rules"])
            for name in r.get("params", {}) if name in RESERVED_PARAMS]


async def run_jobs(path: Path, faults: dict[str, Any]) -> tuple[list[Result], int, int]:
    """Every job's result, then what stays reserved on every budget line and how many leases."""
    async with inproc_stack(rules=path, faults=faults, job_timeout_s=15) as stack:
        ids = [await stack.client.submit(**job) for job in JOBS]
        results = await stack.client.wait_all(ids, timeout=30)
        redis = stack.client.redis
        reserved = 0
        async for key in redis.scan_iter(match="routeq:budget:*"):
            if await cast(Awaitable[bytes], redis.type(key)) == b"hash":
                reserved += int(await cast(Awaitable[bytes | None], redis.hget(key, "reserved")) or 0)
        leases = await redis.zcard("routeq:resv-leases")
    return results, reserved, leases


@settings(max_examples=15, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(doc=rules_docs(), faults=FAULTS)
def test_any_accepted_rules_file_ends_every_job_typed_and_releases_every_reservation(
    doc: dict[str, Any], faults: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.json"
        path.write_bytes(orjson.dumps(doc))
        try:
            load_rules(path, catalog=Catalog.load())
        except RulesError as exc:
            paths = {p.path for p in exc.problems}
            missing = [p for p in reserved_params_named(doc) if p not in paths]
            assert not missing, f"reserved params the loader let through: {missing}"
            assume(False)
        assert not reserved_params_named(doc), "the loader accepted a reserved param"
        results, reserved, leases = asyncio.run(run_jobs(path, faults))

    for res in results:
        assert res.status in ("succeeded", "failed", "rejected"), res
        if res.status != "succeeded":
            assert res.error is not None and res.error.type != "internal_error", res.error
            assert res.error.retryable == retryable(res.error.type), res.error
    assert reserved == 0 and leases == 0, f"{reserved} nano-USD still reserved, {leases} lease(s) open"


@pytest.mark.parametrize("name", sorted(RESERVED_PARAMS))
def test_each_reserved_param_is_refused_by_the_loader_and_the_request_builder(
    name: str, tmp_path: Path
) -> None:
    """One list serves both: a name the builder would refuse at run time (after reserving money) is
    refused by ``routeq rules check`` first."""
    with pytest.raises(ValueError, match=name):
        ChatRequest(messages=[{"role": "user", "content": "hi"}], chain=(MODELS[0],), max_tokens=1,
                    params={name: 1})
    for where, doc in (
        ("$.rules[0].params", {"version": 1, "rules": [{"name": "d", "priority": 1, "when": {},
                                                        "model": MODELS[0], "params": {name: 1}}]}),
        ("$.defaults.params", {"version": 1, "defaults": {"params": {name: 1}},
                               "rules": [{"name": "d", "priority": 1, "when": {}, "model": MODELS[0]}]}),
    ):
        path = tmp_path / "rules.json"
        path.write_bytes(orjson.dumps(doc))
        with pytest.raises(RulesError) as err:
            load_rules(path)
        assert f"{where}.{name}" in {p.path for p in err.value.problems}
