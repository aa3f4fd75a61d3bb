"""Upstream chaos: every job ends with one typed result whose attempts account for every HTTP
call; a failing model's circuit opens and closes again; a dead key or empty account stops all
calls at once instead of hammering OpenRouter."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from producer_client.client import Client
from producer_client.contract import Result
from tests.support import emu
from tests.support.faults import decisions_by_job, wait_until
from tests.support.procs import API_KEY, Emulator, WorkerProcess, start_worker

pytestmark = pytest.mark.integration

PRO = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0, "max_latency_ms": 30000}
# Contexts that route through different rules, so the chaos reaches every model of the catalog's
# common chains (default, low-latency, code, free tier, enterprise).
CONTEXTS: list[dict[str, Any]] = [
    PRO,
    {**PRO, "max_latency_ms": 1000},
    {**PRO, "task_type": "code"},
    {"user_tier": "free"},
    {"user_tier": "enterprise", "budget_remaining": 500.0},
]
CHAOS = {"seed": 20261122, "models": {"*": {
    "error_5xx": 0.30, "rate_limit": 0.10, "retry_after_s": 1, "timeout": 0.04, "timeout_s": 1.2,
    "error_200": 0.05, "finish_error": 0.05,
}}}
# What a failed attempt may be called; anything else is an unclassified failure.
TYPED_ERRORS = {"server_error", "rate_limited", "timeout", "upstream_error_200", "finish_error",
                "invalid_response", "network", "deadline_exceeded"}
MINI, LLAMA = "openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct"
OTHER_KEY = "sk-or-v1-the-other-team-0123456789"


async def test_chaos_1000_jobs_none_lost_each_typed_every_call_accounted(
    redis_url: str, clean_emulator: Emulator
) -> None:
    emu.set_faults(clean_emulator.base_url, CHAOS)
    worker = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS="200",
                           OPENROUTER_TIMEOUT_S="0.5", OPENROUTER_MAX_RETRIES="2",
                           ROUTEQ_BREAKER_THRESHOLD="1000000")  # the breaker has its own test
    client = Client.from_url(redis_url)
    specs: list[dict[str, Any]] = [
        {"id": f"chaos-{i}", "prompt": f"chaos job {i}", "context": CONTEXTS[i % len(CONTEXTS)]}
        for i in range(1000)
    ]
    try:
        t0 = time.monotonic()
        handles = await client.submit_many(specs, queue="batch")
        results = await client.wait_all([h.job_id for h in handles], batch_id=handles[0].batch_id,
                                        timeout=120)
        elapsed = time.monotonic() - t0
        calls_listed = sum(len(r.routing.attempts) for r in results if r.routing)
        # Timed-out attempts end at the emulator after the worker gave up on them.
        await wait_until(lambda: _calls_are(clean_emulator, calls_listed), 10, "emulator calls to settle")
        decisions = await decisions_by_job(client.redis)
        stats = emu.stats(clean_emulator.base_url)
        billed = billed_usd(clean_emulator)
    finally:
        await client.close()
        worker.kill()

    by_outcome = Counter((r.status, r.error.type if r.error else "-") for r in results)
    attempt_errors = Counter(a.error_type or "ok" for r in results if r.routing for a in r.routing.attempts)
    charged = sum(Decimal(r.usage.cost_usd) for r in results if r.usage)
    print(f"\nchaos: 1000 jobs in {elapsed:.1f}s ({1000 / elapsed:.0f} jobs/s), "
          f"{calls_listed} upstream calls; outcomes {dict(by_outcome)}; attempts {dict(attempt_errors)}; "
          f"emulator outcomes per model attempt {stats['outcomes']}; billed upstream {billed} USD, "
          f"in results {charged} USD ({stats['outcomes'].get('ok', 0) - by_outcome[('succeeded', '-')]} "
          f"generations finished upstream after the worker's attempt timed out)")
    assert [r.job_id for r in results] == [s["id"] for s in specs]
    assert sorted(decisions) == sorted(s["id"] for s in specs)
    assert all(len(d) == 1 for d in decisions.values())
    for r in results:
        assert r.routing is not None and r.routing.attempts, r
        *failed_attempts, last = r.routing.attempts
        assert all(a.error_type in TYPED_ERRORS for a in failed_attempts), r.routing.attempts
        if r.status == "succeeded":
            assert last.error_type is None and r.routing.model_served and r.usage is not None
        else:
            assert r.status == "failed" and r.error is not None, r
            assert r.error.type in TYPED_ERRORS and r.error.retryable, r.error
            assert last.error_type == r.error.type
    # Every HTTP request the emulator served appears in exactly one result's attempts.
    assert stats["requests_total"] == calls_listed
    # Money is never under-counted: an attempt that got no answer (timeout) may have been billed,
    # so results charge it its worst case; what OpenRouter billed never exceeds what they claim.
    unknown = sum(a.outcome_unknown for r in results if r.routing for a in r.routing.attempts)
    assert unknown > 0 and billed <= charged
    # The chaos really happened, of every kind, and retries mostly saved the day.
    injected = {"server_error", "rate_limited", "timeout", "upstream_error_200", "finish_error"}
    assert injected <= set(attempt_errors)
    assert by_outcome[("succeeded", "-")] >= 900
    assert sum(n for (status, _), n in by_outcome.items() if status == "failed") > 0


async def test_circuit_opens_skips_the_model_then_a_probe_closes_it(
    redis_url: str, clean_emulator: Emulator
) -> None:
    emu.set_faults(clean_emulator.base_url, {"fail_always": [MINI]})
    worker = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_BREAKER_THRESHOLD="3",
                           ROUTEQ_BREAKER_COOLDOWN_S="2", OPENROUTER_MAX_RETRIES="0")
    client = Client.from_url(redis_url)
    try:
        tripping = [await run_one(client) for _ in range(3)]
        mini_calls = emu.stats(clean_emulator.base_url)["attempts"].get(MINI, 0)
        skipping = [await run_one(client) for _ in range(3)]
        mini_calls_while_open = emu.stats(clean_emulator.base_url)["attempts"].get(MINI, 0) - mini_calls
        emu.set_faults(clean_emulator.base_url, {})
        await asyncio.sleep(2.2)  # the cooldown passes: the next job is the probe
        probe = await run_one(client)
        after = await run_one(client)
    finally:
        await client.close()
        worker.kill()

    for r in tripping:  # the fallback saved each job while the primary failed
        assert r.status == "succeeded" and r.routing is not None
        assert r.routing.model_served == LLAMA and not r.routing.skipped
    assert mini_calls == 3
    for r in skipping:
        assert r.status == "succeeded" and r.routing is not None
        (skip,) = r.routing.skipped
        assert skip.model == MINI and skip.reason.startswith("circuit open (3 consecutive failures")
        assert r.routing.chain == [LLAMA] and r.routing.model_served == LLAMA
    assert mini_calls_while_open == 0  # the open circuit spared the failing model entirely
    for r in (probe, after):
        assert r.status == "succeeded" and r.routing is not None
        assert r.routing.model_served == MINI and not r.routing.skipped


@pytest.fixture()
def poor_emulator() -> Iterator[Emulator]:
    """An emulator whose account has almost no credit: every real request gets a 402."""
    e = Emulator("--credit-limit", "0.000001")
    yield e
    e.kill()


@pytest.fixture()
def two_keys_emulator() -> Iterator[Emulator]:
    """An emulator that accepts two keys, so one can be revoked while the other keeps working."""
    e = Emulator("--api-key", OTHER_KEY)  # plus the default test key
    yield e
    e.kill()


async def test_out_of_credits_stops_calls_after_the_first(redis_url: str, poor_emulator: Emulator) -> None:
    worker = WorkerProcess(redis_url, poor_emulator.base_url, OPENROUTER_MAX_RETRIES="2")
    client = Client.from_url(redis_url)
    try:
        first = await run_one(client)
        calls_after_first = emu.stats(poor_emulator.base_url)["requests_total"]
        t0 = time.monotonic()
        following = [await run_one(client) for _ in range(5)]
        following_s = time.monotonic() - t0
        calls_after_all = emu.stats(poor_emulator.base_url)["requests_total"]
    finally:
        await client.close()
        worker.kill()

    print(f"\ninsufficient_credits: first job failed after {calls_after_first} call(s); the next 5 failed "
          f"in {following_s:.2f}s with no call")
    assert first.status == "failed" and first.error is not None and first.error.type == "insufficient_credits"
    assert first.routing is not None and len(first.routing.attempts) == calls_after_first == 1
    assert calls_after_all == calls_after_first  # nothing more reached OpenRouter
    for r in following:
        assert r.status == "failed" and r.error is not None and r.error.type == "insufficient_credits"
        assert "out of credits (HTTP 402)" in r.error.message
        assert "every worker using this key pauses upstream calls" in r.error.message
        assert r.error.retryable == first.error.retryable  # the same cause, the same flag
        assert r.routing is not None and r.routing.attempts == []
        assert r.timing.upstream_ms == 0


async def test_a_revoked_key_blocks_only_the_workers_that_use_it(
    redis_url: str, two_keys_emulator: Emulator
) -> None:
    base = two_keys_emulator.base_url
    revoked = WorkerProcess(redis_url, base, ROUTEQ_QUEUES="interactive")  # the default test key
    healthy = WorkerProcess(redis_url, base, ROUTEQ_QUEUES="batch", OPENROUTER_API_KEY=OTHER_KEY)
    client = Client.from_url(redis_url)
    try:
        emu.set_keys(base, [OTHER_KEY])  # the first worker's key is revoked after it started
        first = await run_one(client)
        calls_after_first = emu.stats(base)["requests_total"]
        following = [await run_one(client) for _ in range(5)]
        calls_after_following = emu.stats(base)["requests_total"]
        served = [await client.result(await client.submit(prompt="hello", context=PRO, queue="batch"),
                                      timeout=20) for _ in range(5)]
    finally:
        await client.close()
        revoked.kill()
        healthy.kill()

    assert first.status == "failed" and first.error is not None and first.error.type == "auth"
    assert first.routing is not None and len(first.routing.attempts) == 1 and calls_after_first == 1
    for r in following:  # blocked without a call, with the first failure's type and flag
        assert r.error is not None and (r.error.type, r.error.retryable) == ("auth", first.error.retryable)
        assert "rejected the API key (HTTP 401)" in r.error.message
        assert r.routing is not None and r.routing.attempts == []
    assert calls_after_following == calls_after_first
    assert [r.status for r in served] == ["succeeded"] * 5  # the other key's worker never stopped


async def test_a_worker_with_a_refused_key_or_a_wrong_url_does_not_start(
    redis_url: str, two_keys_emulator: Emulator
) -> None:
    base = two_keys_emulator.base_url
    cases = [
        ({"OPENROUTER_API_KEY": "sk-or-v1-nobody-has-this-key"}, "OPENROUTER_API_KEY was refused"),
        ({"OPENROUTER_BASE_URL": base.removesuffix("/api/v1")}, "it should end in /api/v1"),
        ({"OPENROUTER_API_KEY": ""}, "OPENROUTER_API_KEY is not set"),
    ]
    for settings, says in cases:
        proc = start_worker(redis_url, base, **settings)
        assert proc.proc.wait(20) == 2, proc.output
        assert says in proc.output and "Traceback" not in proc.output
        assert "nobody-has-this-key" not in proc.output  # the key is never echoed
    assert await Client.from_url(redis_url).served.live_workers() == []


def billed_usd(emulator: Emulator) -> Decimal:
    """What the emulated account was charged (``GET /key`` usage), exactly."""
    resp = httpx.get(emulator.base_url + "/key", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
    resp.raise_for_status()
    usage = json.loads(resp.text, parse_float=Decimal, parse_int=Decimal)["data"]["usage"]
    assert isinstance(usage, Decimal)
    return usage


async def run_one(client: Client, context: dict[str, Any] | None = None) -> Result:
    return await client.result(await client.submit(prompt="hello", context=context or PRO), timeout=20)


async def _calls_are(emulator: Emulator, n: int) -> bool:
    return bool(emu.stats(emulator.base_url)["requests_total"] >= n)
