"""End to end on real parts: redis-server, the emulator over HTTP, a worker process."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from producer_client.client import Client
from producer_client.keys import Keys
from tests.support import emu
from tests.support.procs import API_KEY, Emulator, WorkerProcess
from tests.support.waiting import eventually, nothing_pending

pytestmark = pytest.mark.integration

PRO = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0, "max_latency_ms": 30000}


async def test_submit_then_result_carries_the_decision(worker: WorkerProcess, client: Client) -> None:
    job_id = await client.submit(prompt="Refactor this function please",
                                 context={**PRO, "task_type": "code"}, metadata={"order_id": "123"})
    res = await client.result(job_id, timeout=20)
    assert res.status == "succeeded", res.error
    assert res.routing is not None
    assert res.routing.rule == "code-tasks"
    assert res.routing.model == "anthropic/claude-3.5-sonnet"
    assert res.routing.model_served == "anthropic/claude-3.5-sonnet"
    assert res.routing.trace[-1].rule == "code-tasks" and res.routing.trace[-1].matched
    assert res.usage is not None and res.usage.cost_source == "usage.cost"
    assert int(res.usage.cost_usd.replace(".", "")) > 0
    assert res.metadata == {"order_id": "123"}
    assert res.content
    raw = await client.redis.get(Keys().result(job_id))
    assert API_KEY.encode() not in raw


async def test_fallback_when_the_primary_fails(worker: WorkerProcess, client: Client,
                                               clean_emulator: Emulator) -> None:
    emu.set_faults(clean_emulator.base_url, {"fail_always": ["anthropic/claude-3.5-sonnet"]})
    job_id = await client.submit(prompt="write code", context={**PRO, "task_type": "code"})
    res = await client.result(job_id, timeout=20)
    assert res.status == "succeeded"
    assert res.routing is not None
    assert res.routing.model == "anthropic/claude-3.5-sonnet"
    assert res.routing.model_served == "openai/gpt-4o"


async def test_200_with_error_body_is_a_failure_then_retried(
    worker: WorkerProcess, client: Client, clean_emulator: Emulator
) -> None:
    # The only model of the chain answers HTTP 200 with an error body first, then succeeds.
    emu.set_faults(clean_emulator.base_url, {"script": {"openai/gpt-4o-mini": ["error_200"]},
                                             "fail_always": ["anthropic/claude-3-haiku"]})
    job_id = await client.submit(prompt="quick", context={**PRO, "max_latency_ms": 1000})
    res = await client.result(job_id, timeout=20)
    assert res.status == "succeeded"
    assert res.routing is not None and res.routing.rule == "low-latency"
    errors = [a for a in res.routing.attempts if a.error_type]
    assert errors and errors[0].status is not None


async def test_all_models_failing_gives_a_failed_result_with_attempts(
    worker: WorkerProcess, client: Client, clean_emulator: Emulator
) -> None:
    emu.set_faults(clean_emulator.base_url,
                   {"fail_always": ["openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct"]})
    job_id = await client.submit(prompt="hello", context={**PRO})
    res = await client.result(job_id, timeout=30)
    assert res.status == "failed"
    assert res.error is not None and res.error.type
    assert res.routing is not None and len(res.routing.attempts) >= 2
    failed = await client.redis.zscore(Keys().failed, job_id)
    assert failed is not None


async def test_retry_after_is_honoured(worker: WorkerProcess, client: Client,
                                       clean_emulator: Emulator) -> None:
    # Both models of the window rate-limit once; the final (last model's) 429 says Retry-After: 2.
    emu.set_faults(clean_emulator.base_url, {
        "models": {"anthropic/claude-3-haiku": {"retry_after_s": 2}},
        "script": {"openai/gpt-4o-mini": ["429"], "anthropic/claude-3-haiku": ["429"]},
    })
    t0 = time.monotonic()
    job_id = await client.submit(prompt="hi", context={**PRO, "max_latency_ms": 1000})
    res = await client.result(job_id, timeout=30)
    assert res.status == "succeeded"
    assert time.monotonic() - t0 >= 2.0
    assert res.routing is not None
    first = res.routing.attempts[0]
    assert first.status == 429 and first.retry_after_s == 2
    assert res.routing.model_served == "openai/gpt-4o-mini"
    assert len(res.routing.attempts) == 2


async def test_bad_job_bytes_get_a_rejected_result(worker: WorkerProcess, client: Client) -> None:
    keys = Keys()
    # A job that violates the contract, and raw garbage, written straight into the queue.
    now_ms = int(time.time() * 1000)
    bad_doc: dict[str, object] = {"t": None, "f": "complete", "a": [{"messages": "nope"}], "k": {},
                                  "et": now_ms}
    await client.redis.set(keys.job("bad-doc"), orjson.dumps(bad_doc))
    await client.redis.set(keys.job("garbage"), b"\x80\x04\x95 not json")
    await client.redis.zadd(keys.queue(), {"bad-doc": time.time() * 1000, "garbage": time.time() * 1000})
    for job_id, needle in (("bad-doc", "messages"), ("garbage", "not JSON")):
        res = await client.result(job_id, timeout=20)
        assert res.status == "rejected"
        assert res.error is not None and res.error.type == "invalid_job"
        assert needle in res.error.message
    # The worker is still alive and serving.
    ok = await client.result(await client.submit(prompt="still there?", context=PRO), timeout=20)
    assert ok.status == "succeeded"


async def test_duplicate_submit_runs_once(worker: WorkerProcess, client: Client,
                                          clean_emulator: Emulator) -> None:
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 300}}})
    first, second = await asyncio.gather(
        client.submit(prompt="only once", context=PRO, job_id="dup-1"),
        client.submit(prompt="only once", context=PRO, job_id="dup-1"),
    )
    assert first == second == "dup-1"
    res = await client.result("dup-1", timeout=20)
    assert res.status == "succeeded"
    again = await client.submit(prompt="only once", context=PRO, job_id="dup-1")  # after it finished
    assert again == "dup-1"
    # Had the late submit enqueued it again, it would stay queued or running until that run ended:
    # an idle queue proves any second run is over, and its call counted.
    await eventually(lambda: nothing_pending(client), timeout=20, what="nothing queued or running")
    calls = emu.stats(clean_emulator.base_url)["requests_total"]
    assert calls == 1
    entries = await client.redis.xrange(Keys().decisions)
    assert [e for _, e in entries if e[b"job_id"] == b"dup-1"].__len__() == 1
