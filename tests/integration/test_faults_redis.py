"""Redis goes away: workers and producers carry on when it returns, nothing written is lost
(AOF, appendfsync always), and a producer gets RedisUnavailable instead of hanging."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer_client.client import Client
from producer_client.connection import connect
from producer_client.errors import RedisUnavailable
from producer_client.jobs import build_job
from producer_client.money import usd_to_nano
from tests.support import emu
from tests.support.faults import decisions_by_job, hash_ints, in_progress, wait_until
from tests.support.procs import Emulator, RedisServer, WorkerProcess
from tests.support.rules import rules_with_budgets

pytestmark = pytest.mark.integration

CTX = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0, "max_latency_ms": 30000}
COUNTER = "routeq:budget:cap:global:total"


@pytest.fixture()
def own_redis() -> Iterator[RedisServer]:
    """A redis-server this test may kill and restart (AOF on, fsync on every write)."""
    server = RedisServer(appendonly=True).start()
    yield server
    server.close()


async def submit_n(client: Client, prefix: str, n: int) -> list[str]:
    jobs = [(f"{prefix}-{i}", build_job(prompt=f"{prefix} {i}", context=CTX)) for i in range(n)]
    await client.submit_jobs(jobs)
    return [j for j, _ in jobs]


async def test_redis_crash_and_restart_keeps_results_and_spend_and_service_resumes(
    tmp_path: Path, own_redis: RedisServer, clean_emulator: Emulator
) -> None:
    rules = rules_with_budgets(tmp_path, [{"name": "cap", "scope": "global", "limit_usd": "5",
                                           "window": "total"}])
    worker = WorkerProcess(own_redis.url, clean_emulator.base_url, ROUTEQ_RULES=str(rules),
                           ROUTEQ_POLL_DELAY_S="0.1")
    client = Client.from_url(own_redis.url)
    try:
        before_ids = await submit_n(client, "before", 5)
        before = await client.wait_all(before_ids, timeout=20)
        (spent_before,) = await hash_ints(client.redis, COUNTER, "spent")

        own_redis.stop(signal.SIGKILL)  # a crash, not a clean shutdown: only the AOF survives
        await asyncio.sleep(1.5)  # the worker's poll loop and the producer meet a dead Redis
        with pytest.raises(RedisUnavailable):
            await client.get(before_ids[0])
        own_redis.start()
        restarted = time.monotonic()

        kept = await client.get_many(before_ids)  # the same producer object, reconnected
        (spent_after,) = await hash_ints(client.redis, COUNTER, "spent")
        after_ids = await submit_n(client, "after", 5)
        after = await client.wait_all(after_ids, timeout=30)
        recovery_s = time.monotonic() - restarted
        spent_final, reserved = await hash_ints(client.redis, COUNTER, "spent", "reserved")
        decisions = await decisions_by_job(client.redis)
        alive = worker.proc.poll() is None
    finally:
        await client.close()
        worker.kill()

    print(f"\nRedis SIGKILL + restart: 5 new jobs submitted and done {recovery_s:.2f}s after the restart")
    assert alive  # the same worker process served before and after
    assert all(r.status == "succeeded" for r in before)
    assert [r.model_dump() if r else None for r in kept] == [r.model_dump() for r in before]
    assert spent_after == spent_before == sum(usd_to_nano(r.usage.cost_usd) for r in before if r.usage)
    assert [r.status for r in after] == ["succeeded"] * 5
    assert spent_final == spent_before + sum(usd_to_nano(r.usage.cost_usd) for r in after if r.usage)
    assert reserved == 0
    assert sorted(decisions) == sorted(before_ids + after_ids)
    assert "Redis unreachable" in worker.output and "reachable again" in worker.output
    assert recovery_s < 10


async def test_job_in_flight_during_an_outage_still_gets_its_result(
    own_redis: RedisServer, clean_emulator: Emulator
) -> None:
    """The upstream call ends while Redis is down; the result write is retried until it is back."""
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 1500}}})
    worker = WorkerProcess(own_redis.url, clean_emulator.base_url, ROUTEQ_POLL_DELAY_S="0.1")
    client = Client.from_url(own_redis.url)
    try:
        ids = await submit_n(client, "outage", 3)
        await wait_until(lambda: _claimed(client, 3), 10, "3 jobs in flight")
        own_redis.stop()
        down_at = time.monotonic()
        await asyncio.sleep(3.5)  # the calls finish at ~1.5 s: their result writes fail and retry
        own_redis.start()
        results = await client.wait_all(ids, timeout=30)
        waited_s = time.monotonic() - down_at
        decisions = await decisions_by_job(client.redis)
        leftovers = await client.queue_depth() + await in_progress(client.redis)
        calls = emu.stats(clean_emulator.base_url)["requests_total"]
    finally:
        await client.close()
        worker.kill()

    print(f"\nRedis down 3.5s under 3 in-flight jobs: results {waited_s:.2f}s after it went down")
    assert [r.status for r in results] == ["succeeded"] * 3
    assert {r.job_try for r in results} == {1}  # written by the first run, not by a re-run
    assert calls == 3
    assert all(len(decisions[j]) == 1 for j in ids)
    assert leftovers == 0
    assert "finishing job" in worker.output  # the retry path really ran


async def test_producer_gets_redis_unavailable_quickly_when_redis_is_gone(own_redis: RedisServer) -> None:
    client = Client.from_url(own_redis.url)
    waiter = Client.from_url(own_redis.url)
    try:
        await client.queue_depth()  # a warm pool, as in a running web backend
        job_id = await client.submit(prompt="never run", context=CTX)
        waiting = asyncio.create_task(waiter.result(job_id, timeout=60))
        await asyncio.sleep(0.3)
        own_redis.stop()
        t0 = time.monotonic()
        with pytest.raises(RedisUnavailable) as submit_err:
            await asyncio.wait_for(client.submit(prompt="x", context=CTX), 30)
        submit_s = time.monotonic() - t0
        with pytest.raises(RedisUnavailable):
            await asyncio.wait_for(waiting, 30)
        wait_s = time.monotonic() - t0
    finally:
        await client.close()
        await waiter.close()

    print(f"\nRedis stopped: submit raised RedisUnavailable after {submit_s:.2f}s, "
          f"a waiting result() after {wait_s:.2f}s")
    assert str(own_redis.port) in str(submit_err.value) and "unreachable" in str(submit_err.value)
    assert submit_s < 5 and wait_s < 5


async def test_producer_gets_redis_unavailable_when_redis_hangs(own_redis: RedisServer) -> None:
    """A frozen Redis (SIGSTOP, or a partition that drops packets) accepts connections but never
    answers; with a 1 s socket timeout and 3 retries the producer must give up in seconds.
    Regression: with ``health_check_interval`` set, redis-py 5 recursed connect → check_health →
    PING → connect without end here (redis/redis-py#3745) and the call hung for minutes."""
    client = Client(connect(own_redis.url, socket_timeout_s=1.0))
    assert own_redis.proc is not None
    own_redis.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(RedisUnavailable):
            await asyncio.wait_for(client.submit(prompt="x", context=CTX), 12)
        took = time.monotonic() - t0
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
        await client.close()
    print(f"\nfrozen Redis: RedisUnavailable after {took:.2f}s")
    assert took < 10


async def _claimed(client: Client, n: int) -> bool:
    return await in_progress(client.redis) == n
