"""A worker dies mid-flight (SIGKILL) or is asked to stop (SIGTERM): nothing lost, nothing run twice
that need not be, and what did run twice is charged as the budget rules say.

The SIGKILL-with-budget case lives in test_budget_concurrency.py; here: many in-flight jobs and
two survivors without budgets, then graceful shutdown with short and with long calls.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from producer_client.client import Client
from producer_client.contract import Job
from producer_client.jobs import build_job
from producer_client.keys import Keys
from producer_client.money import usd_to_nano
from tests.support import emu
from tests.support.faults import decisions_by_job, hash_ints, in_progress, start_workers
from tests.support.procs import Emulator, WorkerProcess
from tests.support.rules import rules_with_budgets
from tests.support.waiting import eventually, nothing_pending

pytestmark = pytest.mark.integration

CTX = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0, "max_latency_ms": 30000}
KEYS = Keys()
JOB_TIMEOUT_S = 8  # the job's upstream deadline is 5 s less: room for the 2 s calls
# Only bounds a broken run: polls return as soon as what they wait for is there.
SETTLE_S = 30


def jobs(prefix: str, n: int) -> list[tuple[str, Job]]:
    return [(f"{prefix}-{i}", build_job(prompt=f"{prefix} job {i}", context=CTX)) for i in range(n)]


def started_here(worker: WorkerProcess, job_id: str) -> bool:
    """The worker logs ``→ {id}:complete try=N`` when it starts a job (at ROUTEQ_LOG_LEVEL=DEBUG)."""
    return any(re.search(rf"→ {re.escape(job_id)}:complete", line) for line in worker.output.splitlines())


async def test_sigkill_with_50_in_flight_two_survivors_finish_each_job_once(
    redis_url: str, clean_emulator: Emulator
) -> None:
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 2000}}})
    settings = {"ROUTEQ_JOB_TIMEOUT_S": str(JOB_TIMEOUT_S), "ROUTEQ_POLL_DELAY_S": "0.1"}
    doomed = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS="200", **settings)
    client = Client.from_url(redis_url)
    batch = jobs("kill", 50)
    ids = [j for j, _ in batch]
    survivors: list[WorkerProcess] = []
    try:
        await client.submit_jobs(batch)
        await eventually(lambda: _eq(in_progress(client.redis), 50), timeout=SETTLE_S, what="50 jobs claimed")
        claimed_at = time.monotonic()
        # Claimed is not yet called: kill only once the emulator has received every claimed job's
        # upstream request, so the dead tries' calls are counted below.
        await eventually(lambda: emu.stats(clean_emulator.base_url)["requests_received"] >= 50,
                         timeout=SETTLE_S, interval=0.01, what="50 upstream calls received")
        doomed.kill()  # SIGKILL with 50 upstream calls in flight
        assert await client.get_many(ids) == [None] * 50
        # Each survivor may hold at most 30, so both must take part in the recovery.
        survivors = start_workers(2, redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS="30",
                                  ROUTEQ_LOG_LEVEL="DEBUG", **settings)
        results = await client.wait_all(ids, timeout=JOB_TIMEOUT_S + 10 + 2 + SETTLE_S)
        recovery_s = time.monotonic() - claimed_at
        # Every try is over (a duplicate run would keep its job claimed until its call ended) and
        # the dead tries' calls, cut by the kill, have ended at the emulator.
        calls = await eventually(lambda: _calls_once_idle(client, clean_emulator, 100), timeout=SETTLE_S,
                                 what="all tries over and 100 calls ended upstream")
        decisions = await decisions_by_job(client.redis)
        # arq logs the start line before the job runs, but this process reads worker output on a
        # thread that may lag behind the results on a busy machine.
        await eventually(lambda: all(any(started_here(w, j) for w in survivors) for j in ids),
                         timeout=SETTLE_S, what="a survivor's start line for every job")
    finally:
        await client.close()
        doomed.kill()
        for w in survivors:
            w.kill()

    print(f"\nSIGKILL, 50 in flight: all results {recovery_s:.1f}s after the claim "
          f"(bound: job_timeout {JOB_TIMEOUT_S}s + 10s + the 2s call, plus slack)")
    assert [r.status for r in results] == ["succeeded"] * 50
    assert {r.job_try for r in results} == {2}
    assert sorted(decisions) == sorted(ids) and all(len(d) == 1 for d in decisions.values())
    assert calls == 100  # one upstream call per try: the dead one and the rescue, never more
    assert all(any(started_here(w, j) for j in ids) for w in survivors)
    # The product's bound: a dead worker's job is ready again job_timeout + 10 s after its claim,
    # then the rescue makes its 2 s call. Measured from the claim (the clock the bound runs on),
    # with 8 s for two survivors starting and scheduling on a loaded machine; a job stuck until
    # some later expiry (arq's default, a lease) would take far longer.
    assert recovery_s < JOB_TIMEOUT_S + 10 + 2 + 8


async def test_sigterm_lets_short_calls_finish_and_takes_no_new_jobs(
    redis_url: str, clean_emulator: Emulator
) -> None:
    # The grace is far longer than the 1.5 s calls, so a worker that sits out the grace instead of
    # exiting when its calls are done fails the drain bound below even on a slow machine.
    grace = 12
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 1500}}})
    worker = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_SHUTDOWN_GRACE_S=str(grace),
                           ROUTEQ_POLL_DELAY_S="0.05", ROUTEQ_LOG_LEVEL="DEBUG")
    client = Client.from_url(redis_url)
    early, late = jobs("term-early", 10), jobs("term-late", 5)
    rescuer: WorkerProcess | None = None
    try:
        await client.submit_jobs(early)
        await eventually(lambda: _eq(in_progress(client.redis), 10), timeout=SETTLE_S,
                         what="10 jobs in flight")
        worker.signal(15)
        signalled = time.monotonic()
        worker.wait_for_line("allow_pick_jobs", timeout=SETTLE_S)
        await client.submit_jobs(late)
        exit_code = await asyncio.to_thread(worker.proc.wait, grace + SETTLE_S)
        drain_s = time.monotonic() - signalled
        # arq's last shutdown line: the output read so far covers everything the worker did.
        await eventually(lambda: "wait complete" in worker.output, timeout=SETTLE_S,
                         what="the worker's final shutdown line")
        early_results = await client.get_many([j for j, _ in early])
        late_waiting = [await client.redis.zscore(KEYS.queue(), j) for j, _ in late]
        late_results = await client.get_many([j for j, _ in late])
        late_in_flight = await in_progress(client.redis)
        emu.set_faults(clean_emulator.base_url, {})
        rescuer = WorkerProcess(redis_url, clean_emulator.base_url)
        rescued = await client.wait_all([j for j, _ in late], timeout=SETTLE_S)
        decisions = await decisions_by_job(client.redis)
    finally:
        await client.close()
        worker.kill()
        if rescuer:
            rescuer.kill()

    print(f"\nSIGTERM with 10 calls of 1.5s in flight: process exited {drain_s:.2f}s after the signal "
          f"(grace {grace}s)")
    assert exit_code == 0
    assert drain_s < grace
    assert all(r is not None and r.status == "succeeded" and r.job_try == 1 for r in early_results)
    # Jobs enqueued after the signal were left for others: queued, not started, no result.
    assert all(score is not None for score in late_waiting)
    assert late_results == [None] * 5 and late_in_flight == 0
    assert all(r.status == "succeeded" and r.job_try == 1 for r in rescued)
    assert all(len(decisions[j]) == 1 for j, _ in early + late)
    assert not any(started_here(worker, j) for j, _ in late)


async def test_sigterm_requeues_calls_longer_than_the_grace_and_charges_the_cut_try(
    tmp_path: Path, redis_url: str, clean_emulator: Emulator
) -> None:
    """Cut calls go back to the queue; a second worker completes them with job_try 2. The cut try
    may have been billed upstream, so its reservation is charged in full once its lease ends."""
    grace, job_timeout = 1, 9
    rules = rules_with_budgets(tmp_path, [{"name": "cap", "scope": "global", "limit_usd": "5",
                                           "window": "total"}])
    counter = "routeq:budget:cap:global:total"
    settings = {"ROUTEQ_RULES": str(rules), "ROUTEQ_JOB_TIMEOUT_S": str(job_timeout),
                "ROUTEQ_LEASE_MARGIN_S": "0.5", "ROUTEQ_RECLAIM_EVERY_S": "0.5",
                "ROUTEQ_SHUTDOWN_GRACE_S": str(grace), "ROUTEQ_POLL_DELAY_S": "0.05"}
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 3500}}})
    worker = WorkerProcess(redis_url, clean_emulator.base_url, **settings)
    client = Client.from_url(redis_url)
    batch = jobs("term-long", 5)
    ids = [j for j, _ in batch]
    rescuer: WorkerProcess | None = None
    try:
        await client.submit_jobs(batch)
        await eventually(lambda: _eq(client.redis.zcard("routeq:resv-leases"), 5), timeout=SETTLE_S,
                         what="5 reservations")
        (held,) = await hash_ints(client.redis, counter, "reserved")
        worker.signal(15)
        signalled = time.monotonic()
        exit_code = await asyncio.to_thread(worker.proc.wait, grace + SETTLE_S)
        exit_s = time.monotonic() - signalled
        assert await client.get_many(ids) == [None] * 5
        emu.set_faults(clean_emulator.base_url, {})
        rescuer = WorkerProcess(redis_url, clean_emulator.base_url, **settings)
        results = await client.wait_all(ids, timeout=job_timeout + 10 + SETTLE_S)
        done_s = time.monotonic() - signalled
        await eventually(lambda: _eq(client.redis.zcard("routeq:resv-leases"), 0),
                         timeout=job_timeout + SETTLE_S, what="cut tries' leases reclaimed")
        spent, reserved = await hash_ints(client.redis, counter, "spent", "reserved")
        decisions = await decisions_by_job(client.redis)
    finally:
        await client.close()
        worker.kill()
        if rescuer:
            rescuer.kill()

    print(f"\nSIGTERM with calls longer than the grace ({grace}s): exited after {exit_s:.2f}s; "
          f"cut jobs completed by another worker {done_s:.1f}s after the signal")
    assert exit_code == 0
    # Shutdown is bounded by the grace, not by the calls: 5 s of slack for cancelling, requeueing
    # and process exit on a loaded machine. That the 3.5 s calls were cut rather than awaited is
    # shown by the second tries below.
    assert exit_s < grace + 5
    assert [r.status for r in results] == ["succeeded"] * 5
    assert {r.job_try for r in results} == {2}
    assert all(len(decisions[j]) == 1 for j in ids)
    second_tries = sum(usd_to_nano(r.usage.cost_usd) for r in results if r.usage)
    assert spent == held + second_tries  # cut tries in full, once; second tries at cost
    assert reserved == 0


async def test_sigterm_cut_jobs_are_ready_again_at_once(redis_url: str, clean_emulator: Emulator) -> None:
    """A claim pushes the job's score to its in-progress expiry; a cut job must not keep that
    score, or it would wait job_timeout + 10 s before any worker could start it again."""
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 2500}}})
    worker = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_SHUTDOWN_GRACE_S="1",
                           ROUTEQ_JOB_TIMEOUT_S="30", ROUTEQ_POLL_DELAY_S="0.05")
    client = Client.from_url(redis_url)
    batch = jobs("term-ready", 3)
    try:
        await client.submit_jobs(batch)
        await eventually(lambda: _eq(in_progress(client.redis), 3), timeout=SETTLE_S, what="3 jobs in flight")
        worker.signal(15)
        await asyncio.to_thread(worker.proc.wait, SETTLE_S)
        now_ms = time.time() * 1000
        scores = [await client.redis.zscore(KEYS.queue(), j) for j, _ in batch]
        # The cut calls still end at the emulator; let them, so they do not count in a later test.
        await eventually(lambda: _calls_at_least(clean_emulator, 3), timeout=SETTLE_S,
                         what="cut calls to end upstream")
    finally:
        await client.close()
        worker.kill()
    assert all(s is not None for s in scores), "cut jobs must stay queued"
    late = {j: round((s - now_ms) / 1000, 1) for (j, _), s in zip(batch, scores, strict=True) if s > now_ms}
    assert not late, f"cut jobs not startable for another N seconds: {late}"


def _calls_at_least(emulator: Emulator, n: int) -> bool:
    return bool(emu.stats(emulator.base_url)["requests_total"] >= n)


async def _calls_once_idle(client: Client, emulator: Emulator, at_least: int) -> int | None:
    """Calls ended at the emulator, once nothing is queued or in progress and at least
    ``at_least`` have ended; None before that."""
    if not await nothing_pending(client):
        return None
    calls: int = emu.stats(emulator.base_url)["requests_total"]
    return calls if calls >= at_least else None



async def _eq(value: Awaitable[Any], expected: int) -> bool:
    return bool(await value == expected)
