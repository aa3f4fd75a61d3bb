"""Rollups written as jobs finish, and feedback folded into them, through the in-process stack.

Expected values are computed here from the results themselves (cost, tokens, latency bucket by
the documented bounds), not with the writer's own helpers, so a drift in either shows.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

import pytest

from producer_client.contract import Result
from producer_client.errors import UnknownJob
from producer_client.money import usd_to_nano
from tests.support.inproc import Stack, inproc_stack
from tests.support.waiting import eventually
from worker.rollup_format import CAPS, LATENCY_BOUNDS_MS
from worker.settings import WorkerSettings

MINI, LLAMA = "openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct"
PRO = {"user_tier": "pro", "task_type": "chat", "tenant": "acme", "max_latency_ms": 30000}


async def run(stack: Stack, prompt: str, **context: Any) -> Result:
    job_id = await stack.client.submit(prompt=prompt, context={**PRO, **context})
    return await stack.client.result(job_id, timeout=15)


async def rollup_fields(stack: Stack) -> dict[str, str]:
    """Every rollup hash of the run, summed field by field (a run may straddle an hour)."""
    redis, prefix = stack.client.redis, stack.client.keys.rollup("")
    out: Counter[str] = Counter()
    floats: dict[str, float] = {}
    async for key in redis.scan_iter(match=prefix + "[0-9]*"):
        for name, value in (await redis.hgetall(key)).items():  # type: ignore[misc]
            field, text = name.decode(), value.decode()
            if field.endswith(("|qs", "|qq")):
                floats[field] = floats.get(field, 0.0) + float(text)
            else:
                out[field] += int(text)
    return {**{k: str(v) for k, v in out.items()}, **{k: repr(v) for k, v in floats.items()}}


def expected(results: list[Result], tenant: str = "acme") -> Counter[str]:
    out: Counter[str] = Counter()
    for r in results:
        assert r.routing is not None
        dims = "|".join([r.routing.rule, r.routing.model_served or r.routing.model, "-",
                         r.routing.task_type or "-", tenant])
        out[f"{dims}|n"] += 1
        out[f"{dims}|s:{r.status}"] += 1
        out[f"{dims}|h:{bisect.bisect_right(LATENCY_BOUNDS_MS, r.timing.total_ms)}"] += 1
        if r.error is not None:
            out[f"{dims}|e:{r.error.type}"] += 1
        if r.routing.model_served and r.routing.model_served != r.routing.chain[0]:
            out[f"{dims}|fb"] += 1
        if r.usage is not None:
            for metric, value in (("cost", usd_to_nano(r.usage.cost_usd)), ("pt", r.usage.prompt_tokens),
                                  ("ct", r.usage.completion_tokens)):
                if value:
                    out[f"{dims}|{metric}"] += value
    return out


async def test_jobs_land_in_the_rollup_with_exact_counts_cost_histogram_and_dimensions() -> None:
    faults = {"script": {MINI: ["ok", "ok", "502"]}, "fail_always": []}
    async with inproc_stack(faults=faults) as stack:
        results = [await run(stack, f"hello number {i}") for i in range(3)]  # the third falls back
        stack.emulator.set_faults({"fail_always": [MINI, LLAMA]})
        failed = await run(stack, "this one fails everywhere")
        fields = await rollup_fields(stack)
    assert [r.status for r in results] == ["succeeded"] * 3 and failed.status == "failed"
    assert results[2].routing is not None and results[2].routing.model_served == LLAMA
    want = expected([*results, failed])
    assert {k: int(v) for k, v in fields.items()} == dict(want)
    assert want[f"default|{MINI}|-|chat|acme|n"] == 3  # 2 served by mini + the failure (chain head)
    assert want[f"default|{LLAMA}|-|chat|acme|fb"] == 1


async def test_a_value_past_the_cap_folds_into_other() -> None:
    async with inproc_stack() as stack:
        redis, keys = stack.client.redis, stack.client.keys
        full = [f"task-{i}" for i in range(CAPS["task_type"])]
        await redis.sadd(keys.rollup_dim("task_type"), *full)  # type: ignore[misc]
        known = await run(stack, "hello", task_type="task-7")
        new = await run(stack, "hello", task_type="brand-new-task")
        fields = await rollup_fields(stack)
        members = await redis.smembers(keys.rollup_dim("task_type"))  # type: ignore[misc]
    assert known.status == new.status == "succeeded"
    assert fields[f"default|{MINI}|-|task-7|acme|n"] == "1"
    assert fields[f"default|{MINI}|-|other|acme|n"] == "1"
    assert not any("brand-new-task" in f for f in fields)
    assert len(members) == CAPS["task_type"] and b"brand-new-task" not in members


async def test_feedback_lands_in_the_rollup_and_a_second_one_replaces_it() -> None:
    async with inproc_stack() as stack:
        job = await run(stack, "rate me")
        prefix = f"default|{MINI}|-|chat|acme|"
        assert await stack.client.feedback(job.job_id, score=0.8, label="good") is False
        first = await rollup_fields(stack)
        assert await stack.client.feedback(job.job_id, score=0.5, label="meh") is True
        second = await rollup_fields(stack)
        record = await stack.client.redis.hgetall(stack.client.keys.feedback(job.job_id))  # type: ignore[misc]
    assert first[prefix + "qn"] == "1"
    assert (float(first[prefix + "qs"]), float(first[prefix + "qq"])) == pytest.approx((0.8, 0.64))
    assert first[prefix + "l:good"] == "1"
    assert second[prefix + "qn"] == "1"  # replaced, not counted twice
    assert float(second[prefix + "qs"]) == pytest.approx(0.5)
    assert float(second[prefix + "qq"]) == pytest.approx(0.25)
    assert (second[prefix + "l:good"], second[prefix + "l:meh"]) == ("0", "1")
    assert record[b"score"] == b"0.5" and record[b"label"] == b"meh"


async def test_feedback_after_the_result_expired_still_counts() -> None:
    async with inproc_stack(result_ttl_s=1) as stack:
        job = await run(stack, "short-lived result")
        result_key = stack.client.keys.result(job.job_id)

        async def expired() -> bool:
            return not await stack.client.redis.exists(result_key)

        await eventually(expired, timeout=10, what="the result to expire")
        await stack.client.feedback(job.job_id, score=1.0)
        fields = await rollup_fields(stack)
    assert fields[f"default|{MINI}|-|chat|acme|qn"] == "1"
    assert float(fields[f"default|{MINI}|-|chat|acme|qs"]) == 1.0


async def test_feedback_on_an_unknown_job_is_a_clear_error() -> None:
    async with inproc_stack() as stack:
        with pytest.raises(UnknownJob, match="no finished job 'never-ran'"):
            await stack.client.feedback("never-ran", score=0.5)
        assert not [k async for k in stack.client.redis.scan_iter(match="*feedback:never-ran*")]


async def test_rollup_days_sets_the_ttl_and_zero_turns_rollups_off() -> None:
    assert WorkerSettings.from_env({"ROUTEQ_ROLLUP_DAYS": "2"}).rollup_days == 2
    async with inproc_stack(rollup_days=2) as stack:
        await run(stack, "keep me two days")
        keys = [k async for k in stack.client.redis.scan_iter(match=stack.client.keys.rollup("") + "[0-9]*")]
        ttls = [await stack.client.redis.ttl(k) for k in keys]
        dim_ttl = await stack.client.redis.ttl(stack.client.keys.rollup_dim("model"))
    assert keys and all(2 * 86_400 - 60 <= t <= 2 * 86_400 for t in [*ttls, dim_ttl])
    async with inproc_stack(rollup_days=0) as stack:
        job_id = (await run(stack, "no rollups")).job_id
        assert not [k async for k in stack.client.redis.scan_iter(match=stack.client.keys.rollup("") + "*")]
        # Feedback does not depend on rollups: it is accepted and kept for its own TTL.
        assert await stack.client.feedback(job_id, score=0.5) is False
        assert await stack.client.feedback(job_id, score=1.0) is True  # a second one replaces it


async def test_labels_past_the_cap_count_as_other_and_a_replacement_takes_out_what_was_counted() -> None:
    from producer_client.client import FEEDBACK_LABEL_CAP

    async with inproc_stack() as stack:
        redis, keys = stack.client.redis, stack.client.keys
        first, second = await run(stack, "label me"), await run(stack, "label me too")
        await redis.sadd(keys.rollup_dim("label"), *[f"l{i}" for i in range(FEEDBACK_LABEL_CAP)])  # type: ignore[misc]
        await stack.client.feedback(first.job_id, label="l7")  # a kept label counts as itself
        await stack.client.feedback(second.job_id, label="brand-new")  # past the cap: other
        folded = await rollup_fields(stack)
        await stack.client.feedback(second.job_id, label="l3")  # replaces the one counted as other
        replaced = await rollup_fields(stack)
        members = await redis.smembers(keys.rollup_dim("label"))  # type: ignore[misc]
        record = await redis.hgetall(keys.feedback(second.job_id))  # type: ignore[misc]
    prefix = f"default|{MINI}|-|chat|acme|"
    assert (folded[prefix + "l:l7"], folded[prefix + "l:other"]) == ("1", "1")
    assert not any("brand-new" in f for f in folded)
    assert (replaced[prefix + "l:other"], replaced[prefix + "l:l3"]) == ("0", "1")
    assert len(members) == FEEDBACK_LABEL_CAP and b"brand-new" not in members
    assert record[b"label"] == b"l3"  # the record keeps what the user said


async def test_the_day_tier_holds_the_same_sums_as_the_hours_feedback_included() -> None:
    async with inproc_stack() as stack:
        redis, keys = stack.client.redis, stack.client.keys
        jobs = [await run(stack, f"day tier {i}") for i in range(3)]
        await stack.client.feedback(jobs[0].job_id, score=0.5, label="ok")
        await stack.client.feedback(jobs[0].job_id, score=1.0, label="good")  # replaces: both tiers
        hours = await rollup_fields(stack)
        days: dict[str, dict[str, str]] = {}
        async for key in redis.scan_iter(match=keys.rollup_day("*")):
            raw = await redis.hgetall(key)  # type: ignore[misc]
            days[key.decode()] = {k.decode(): v.decode() for k, v in raw.items()}
        ttl = await redis.ttl(next(iter(days)))
    firsts = {d.pop("_first") for d in days.values()}
    summed: Counter[str] = Counter()
    floats: dict[str, float] = {}
    for d in days.values():
        for name, text in d.items():
            if name.endswith(("|qs", "|qq")):
                floats[name] = floats.get(name, 0.0) + float(text)
            else:
                summed[name] += int(text)
    counts = {k: v for k, v in hours.items() if not k.endswith(("|qs", "|qq"))}
    assert counts == {k: str(v) for k, v in summed.items()}
    assert {k: float(v) for k, v in hours.items() if k.endswith(("|qs", "|qq"))} == pytest.approx(floats)
    prefix = f"default|{MINI}|-|chat|acme|"
    assert (summed[prefix + "qn"], summed[prefix + "l:good"], summed[prefix + "l:ok"]) == (1, 1, 0)
    assert all(0 <= int(f) <= 23 for f in firsts) and ttl > 0
