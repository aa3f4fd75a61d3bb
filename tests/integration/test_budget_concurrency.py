"""Budgets under real concurrency: two worker processes, hundreds of jobs, a small cap."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from producer_client.client import Client
from producer_client.jobs import build_job
from producer_client.money import usd_to_nano
from tests.support import emu
from tests.support.procs import Emulator, RedisServer, WorkerProcess
from tests.support.rules import rules_with_budgets

pytestmark = pytest.mark.integration

CTX = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0, "max_latency_ms": 30000}
CAP_USD = "0.003"
COUNTER = "routeq:budget:cap:global:total"


async def test_many_jobs_two_workers_never_pass_the_cap(
    tmp_path: Path, redis_server: RedisServer, redis_url: str, clean_emulator: Emulator
) -> None:
    rules = rules_with_budgets(tmp_path, [
        {"name": "cap", "scope": "global", "limit_usd": CAP_USD, "window": "total"},
    ])
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 40, "latency_jitter_ms": 40}}})
    workers = [
        WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_RULES=str(rules), ROUTEQ_MAX_JOBS="150")
        for _ in range(2)
    ]
    client = Client.from_url(redis_url)
    try:
        jobs = [
            (f"cap-{i}", build_job(prompt=f"Say something short about item number {i}.", context=CTX,
                                   params={"max_tokens": 16}))
            for i in range(400)
        ]
        await client.submit_jobs(jobs, queue="batch")
        results = await client.wait_all([j for j, _ in jobs], timeout=120)
        spent, reserved = await client.redis.hmget(COUNTER, "spent", "reserved")
    finally:
        await client.close()
        for w in workers:
            w.kill()

    statuses = {r.status for r in results}
    assert statuses <= {"succeeded", "rejected"}
    rejected = [r for r in results if r.status == "rejected"]
    assert rejected, "the cap should have refused some jobs"
    assert all(r.error is not None and r.error.type == "budget_exceeded" for r in rejected)
    assert "cap" in rejected[0].error.message and "remaining" in rejected[0].error.message  # type: ignore[union-attr]
    charged = sum(usd_to_nano(r.usage.cost_usd) for r in results if r.status == "succeeded" and r.usage)
    cap = usd_to_nano(CAP_USD)
    assert int(spent) == charged  # every charge accounted for, exactly
    assert int(reserved) == 0  # nothing left held
    assert charged <= cap
    assert charged >= cap * 0.9, f"only {charged / cap:.1%} of the cap was used"


async def test_sigkilled_worker_reservations_are_reclaimed_and_jobs_complete(
    tmp_path: Path, redis_server: RedisServer, redis_url: str, clean_emulator: Emulator
) -> None:
    rules = rules_with_budgets(tmp_path, [
        {"name": "cap", "scope": "global", "limit_usd": "5", "window": "total"},
    ])
    settings = {"ROUTEQ_RULES": str(rules), "ROUTEQ_JOB_TIMEOUT_S": "6", "ROUTEQ_LEASE_MARGIN_S": "1",
                "ROUTEQ_RECLAIM_EVERY_S": "0.5"}
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 3000}}})
    doomed = WorkerProcess(redis_url, clean_emulator.base_url, **settings)
    client = Client.from_url(redis_url)
    ids = [f"crash-{i}" for i in range(5)]
    try:
        await client.submit_jobs([(j, build_job(prompt=f"job {j}", context=CTX)) for j in ids])
        deadline = time.monotonic() + 10
        while await client.redis.zcard("routeq:resv-leases") < len(ids):
            assert time.monotonic() < deadline, "jobs never reserved"
            await asyncio.sleep(0.05)
        held = int(await client.redis.hget(COUNTER, "reserved"))
        doomed.kill()  # SIGKILL with five upstream calls in flight
        killed_at = time.monotonic()
        emu.set_faults(clean_emulator.base_url, {})
        rescuer = WorkerProcess(redis_url, clean_emulator.base_url, **settings)
        try:
            results = await client.wait_all(ids, timeout=60)
            recovery_s = time.monotonic() - killed_at
        finally:
            rescuer.kill()
        spent, reserved = await client.redis.hmget(COUNTER, "spent", "reserved")
        leases = await client.redis.zcard("routeq:resv-leases")
    finally:
        await client.close()
        doomed.kill()

    assert [r.status for r in results] == ["succeeded"] * len(ids)
    assert all(r.job_try == 2 for r in results)
    second_tries = sum(usd_to_nano(r.usage.cost_usd) for r in results if r.usage)
    # The dead tries may have been billed upstream: each is charged its full reservation, once.
    assert int(spent) == held + second_tries
    assert int(reserved) == 0 and leases == 0
    assert recovery_s < 6 + 10 + 5  # arq re-runs after job timeout + 10 s
