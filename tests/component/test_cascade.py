"""The validated cascade, run by the pipeline: cheap model first, only its rejected answers go up.

The emulator answers a classification prompt with a sentence instead of a label for a configured
share of prompts, decided by a hash of (model, prompt); the tests compute the same hash, so they
know exactly which jobs must escalate.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from producer_client.contract import Result
from producer_client.money import usd_to_nano
from tests.support.inproc import Stack, inproc_stack
from tests.support.rules import rules_with_budgets
from worker.emulator.content import is_off_format

CHEAP, MID, STANDARD = "meta-llama/llama-3.1-8b-instruct", "openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"
CONTEXT = {"task_type": "classification", "user_id": "u-1", "tenant": "acme"}
LABELS = ["positive", "negative", "neutral"]


def cascade_rules(
    tmp: Path, *, accept: dict[str, Any] | None = None, budgets: list[dict[str, Any]] | None = None,
    escalate: list[str] | None = None,
) -> Path:
    path = rules_with_budgets(tmp, budgets or [])
    doc = orjson.loads(path.read_bytes())
    doc["rules"] = [
        {
            "name": "classify-cheap-first", "priority": 1, "when": {"task_type": "classification"},
            "tier": "budget", "max_tokens": 64,
            "accept": accept or {"labels": LABELS},
            "escalate": escalate or ["mid", "standard"],
        },
        {"name": "default", "priority": 100, "when": {}, "tier": "mid"},
    ]
    path.write_bytes(orjson.dumps(doc))
    return path


def faults(**off_format: float) -> dict[str, Any]:
    names = {"cheap": CHEAP, "mid": MID, "standard": STANDARD}
    return {"models": {names[k]: {"off_format": v} for k, v in off_format.items()}}


async def run_jobs(stack: Stack, prompts: list[str]) -> list[Result]:
    ids = [await stack.client.submit(prompt=p, context=CONTEXT, queue="batch") for p in prompts]
    return list(await asyncio.gather(*(stack.client.result(i, timeout=30) for i in ids)))


def cost(result: Result) -> int:
    assert result.usage is not None
    return usd_to_nano(result.usage.cost_usd)


async def test_exactly_the_cheap_models_rejects_escalate_and_costs_add_up(tmp_path: Path) -> None:
    prompts = [f"classify this review: item {i} was fine I guess" for i in range(80)]
    rules = cascade_rules(tmp_path, budgets=[
        {"name": "tenant-day", "scope": "tenant", "limit_usd": "50.00", "window": "day"},
    ])
    async with inproc_stack(rules=rules, faults=faults(cheap=0.10, mid=0.5)) as stack:
        results = await run_jobs(stack, prompts)
        billed = stack.emulator.stats()
        budget_keys = [k async for k in stack.client.redis.scan_iter(match="routeq:budget:tenant-day:*")]
        counters = await stack.client.redis.hgetall(budget_keys[0])

    rejected_by_cheap = {p for p in prompts if is_off_format(CHEAP, p, 0.10)}
    assert 0 < len(rejected_by_cheap) < len(prompts)  # the hash gives some of each
    for prompt, res in zip(prompts, results, strict=True):
        assert res.status == "succeeded", res.error
        assert res.routing is not None
        steps = res.routing.escalations
        assert steps[0].model == CHEAP
        if prompt not in rejected_by_cheap:
            assert [s.accepted for s in steps] == [True]
            assert res.routing.model_served == CHEAP
            continue
        assert steps[0].accepted is False and "is not one of the labels" in steps[0].reason
        expected = [CHEAP, MID] if not is_off_format(MID, prompt, 0.5) else [CHEAP, MID, STANDARD]
        assert [s.model for s in steps] == expected
        assert [s.accepted for s in steps] == [False] * (len(expected) - 1) + [True]
        assert res.routing.model_served == expected[-1]
        assert res.content is not None and res.content.startswith("label: ")
        # Every step was billed: the job's cost is the sum of its steps'.
        assert cost(res) == sum(usd_to_nano(s.cost_usd) for s in steps)
        assert res.usage is not None and res.usage.prompt_tokens > 0
    total = sum(cost(r) for r in results)
    assert usd_to_nano(billed["billed_usd"]) == total
    assert int(counters[b"reserved"]) == 0
    assert int(counters[b"spent"]) == total


async def test_when_no_step_is_accepted_the_job_fails_not_accepted_with_every_reason(tmp_path: Path) -> None:
    rules = cascade_rules(tmp_path, budgets=[
        {"name": "tenant-day", "scope": "tenant", "limit_usd": "50.00", "window": "day"},
    ])
    async with inproc_stack(rules=rules, faults=faults(cheap=1.0, mid=1.0, standard=1.0)) as stack:
        (res,) = await run_jobs(stack, ["classify: the soup was cold"])
        billed = stack.emulator.stats()
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "not_accepted" and res.error.retryable is False
    assert res.routing is not None
    assert [s.model for s in res.routing.escalations] == [CHEAP, MID, STANDARD]
    assert not any(s.accepted for s in res.routing.escalations)
    for model in (CHEAP, MID, STANDARD):
        assert model in res.error.message
    assert cost(res) == usd_to_nano(billed["billed_usd"]) > 0  # three answers, all charged


async def test_a_budget_that_cannot_cover_the_next_step_stops_the_cascade(tmp_path: Path) -> None:
    # Enough for the cheap model's worst case, not for the standard model's.
    rules = cascade_rules(tmp_path, escalate=["standard"], budgets=[
        {"name": "tenant-day", "scope": "tenant", "limit_usd": "0.0005", "window": "day"},
    ])
    async with inproc_stack(rules=rules, faults=faults(cheap=1.0)) as stack:
        (res,) = await run_jobs(stack, ["classify: delivery took a week"])
        billed = stack.emulator.stats()
        keys = [k async for k in stack.client.redis.scan_iter(match="routeq:budget:tenant-day:*")]
        counters = await stack.client.redis.hgetall(keys[0])
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "budget_exceeded"
    assert res.routing is not None and [s.model for s in res.routing.escalations] == [CHEAP, STANDARD]
    assert "budget" in res.routing.escalations[1].reason
    assert billed["requests_total"] == 1  # the standard model was never asked
    assert int(counters[b"reserved"]) == 0
    assert int(counters[b"spent"]) == cost(res) > 0


async def test_a_json_schema_is_sent_to_models_with_structured_outputs(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"sentiment": {"type": "string", "enum": LABELS}},
        "required": ["sentiment"], "additionalProperties": False,
    }
    rules = cascade_rules(tmp_path, accept={"json_schema": schema}, escalate=["mid"])
    async with inproc_stack(rules=rules) as stack:
        (res,) = await run_jobs(stack, ["classify: great value for money"])
    assert res.status == "succeeded", res.error
    assert res.routing is not None
    steps = res.routing.escalations
    # The cheap model has no structured outputs: it answers in text, which fails the schema; the
    # mid model is sent the schema as response_format, so its answer parses and validates.
    assert [s.model for s in steps] == [CHEAP, MID] and [s.accepted for s in steps] == [False, True]
    assert orjson.loads(res.content or "")["sentiment"] in LABELS


async def test_jobs_without_accept_have_no_escalations(tmp_path: Path) -> None:
    async with inproc_stack(rules=rules_with_budgets(tmp_path, [])) as stack:
        res = await stack.client.result(await stack.client.submit(prompt="classify: fine"), timeout=10)
    assert res.status == "succeeded"
    assert res.routing is not None and res.routing.escalations == []
