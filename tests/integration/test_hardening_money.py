"""Money when upstream outcomes are unknown (issue 9, item 2): an attempt the worker gave up on after
sending may still be billed, so it is charged its reserved worst case, and a budget cap holds
against what OpenRouter (here the emulator) bills, timeouts included."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from redis.asyncio import Redis

from producer_client.client import Client
from producer_client.contract import Result
from producer_client.jobs import build_job
from producer_client.money import usd_to_nano
from tests.support import emu
from tests.support.procs import API_KEY, Emulator, WorkerProcess
from tests.support.rules import rules_with_budgets
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PRO = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0, "max_latency_ms": 30000}
COUNTER = "routeq:budget:cap:global:total"
LEASES = "routeq:resv-leases"
TIMEOUT_S = "0.5"  # OPENROUTER_TIMEOUT_S: the worker stops listening after this ...
LATE_MS = 1500  # ... while the emulator answers, and bills, after this


def cap_line(limit_usd: str) -> dict[str, str]:
    return {"name": "cap", "scope": "global", "limit_usd": limit_usd, "window": "total"}


def billed_nano(base_url: str) -> int:
    """What the emulator's account has billed since its reset (``GET /key`` usage), exactly: the
    catalog's token prices are whole nano-USD, so the total is too."""
    resp = httpx.get(base_url + "/key", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
    resp.raise_for_status()
    usage = json.loads(resp.text, parse_float=Decimal)["data"]["usage"]
    return usd_to_nano(Decimal(usage))


async def counter(redis: Redis) -> tuple[int, int]:
    spent, reserved = await cast(Awaitable[list[Any]], redis.hmget(COUNTER, ["spent", "reserved"]))
    return int(spent or 0), int(reserved or 0)


async def all_answered(base_url: str, attempts: int) -> None:
    """Every request the worker sent has been answered (and billed) by the emulator, even those the
    worker stopped waiting for: only then is the billed total final."""
    await eventually(lambda: emu.stats(base_url)["requests_total"] >= attempts, timeout=15,
                     what=f"the emulator to finish {attempts} request(s)")


async def test_a_sent_attempt_with_no_answer_is_charged_its_reserved_worst_case(
    tmp_path: Path, redis_url: str, clean_emulator: Emulator
) -> None:
    base = clean_emulator.base_url
    rules = rules_with_budgets(tmp_path, [cap_line("5")])
    emu.set_faults(base, {"models": {"*": {"latency_ms": LATE_MS}}})
    worker = WorkerProcess(redis_url, base, ROUTEQ_RULES=str(rules), OPENROUTER_TIMEOUT_S=TIMEOUT_S,
                           OPENROUTER_MAX_RETRIES="1")
    client = Client.from_url(redis_url)
    try:
        job_id = await client.submit(prompt="Say hello to the budget.", context=PRO,
                                     params={"max_tokens": 50})
        holds: list[int] = []  # each distinct amount held while the job ran
        deadline = time.monotonic() + 20
        while (res := await client.get(job_id)) is None:
            assert time.monotonic() < deadline, "the job never finished"
            _, reserved = await counter(client.redis)
            if reserved and (not holds or holds[-1] != reserved):
                holds.append(reserved)
            await asyncio.sleep(0.005)
        assert res.routing is not None
        await all_answered(base, len(res.routing.attempts))
        billed = billed_nano(base)
        spent, reserved = await counter(client.redis)
        leases = await client.redis.zcard(LEASES)
    finally:
        await client.close()
        worker.kill()

    assert res.status == "failed" and res.error is not None and res.error.type == "timeout", res.error
    attempts = res.routing.attempts
    assert len(attempts) == 2, attempts
    assert all(a.outcome_unknown and a.error_type == "timeout" for a in attempts), attempts
    assert holds, "no reservation was seen while the job ran"
    worst = holds[0]  # what one attempt held before it was sent
    assert res.usage is not None and res.usage.cost_source == "unknown_outcome"
    assert usd_to_nano(res.usage.cost_usd) == len(attempts) * worst  # each unanswered attempt: its worst case
    assert spent == len(attempts) * worst and reserved == 0 and leases == 0
    assert res.budget and usd_to_nano(res.budget[0].spent_usd) == spent
    assert 0 < billed <= spent, f"billed {billed} nano-USD, charged {spent}"


async def test_a_small_cap_holds_against_the_bill_with_timeouts(
    tmp_path: Path, redis_url: str, clean_emulator: Emulator
) -> None:
    """60 jobs, two workers, a cap that ~30 of them use up; about half of the attempts time out
    after sending and are billed anyway. Billed never passes the cap."""
    base = clean_emulator.base_url
    cap_usd = "0.0004"
    rules = rules_with_budgets(tmp_path, [cap_line(cap_usd)])
    emu.set_faults(base, {"seed": 3, "models": {"*": {
        "latency_ms": 100, "latency_jitter_ms": 700,  # over TIMEOUT_S about half the time: billed late
        "timeout": 0.1, "timeout_s": 1,  # held past TIMEOUT_S, then a 408 (not billed)
    }}})
    settings = {"ROUTEQ_RULES": str(rules), "OPENROUTER_TIMEOUT_S": "0.45", "OPENROUTER_MAX_RETRIES": "1",
                "ROUTEQ_MAX_JOBS": "40"}
    workers = [WorkerProcess(redis_url, base, **settings) for _ in range(2)]
    client = Client.from_url(redis_url)
    ids = [f"cap-{i}" for i in range(60)]
    try:
        await client.submit_jobs([
            (j, build_job(prompt=f"Say something short about {j}.", context=PRO, params={"max_tokens": 16}))
            for j in ids
        ])
        results = await client.wait_all(ids, timeout=60)
        await all_answered(base, sum(len(r.routing.attempts) for r in results if r.routing))
        billed = billed_nano(base)
        spent, reserved = await counter(client.redis)
        leases = await client.redis.zcard(LEASES)
        decisions = await client.redis.xlen("routeq:decisions")
    finally:
        await client.close()
        for w in workers:
            w.kill()

    cap = usd_to_nano(cap_usd)
    assert [r.job_id for r in results] == ids and decisions == len(ids)  # one result, one record per job
    kinds = Counter(_kind(r) for r in results)
    assert kinds["succeeded"] and kinds["unknown_outcome"] and kinds["budget_exceeded"], kinds  # all seen
    assert set(kinds) <= {"succeeded", "unknown_outcome", "budget_exceeded"}, kinds
    charged = sum(usd_to_nano(r.usage.cost_usd) for r in results if r.usage)
    assert spent == charged, "every charge appears in exactly one result"
    assert reserved == 0 and leases == 0
    assert billed <= spent <= cap, f"billed {billed}, charged {spent}, cap {cap} (nano-USD)"


def _kind(r: Result) -> str:
    if r.usage is not None and r.usage.cost_source == "unknown_outcome":
        return "unknown_outcome"
    if r.status == "succeeded":
        return "succeeded"
    assert r.error is not None
    return r.error.type
