"""(d) Enqueue rate: routeq's batched submits vs arq's ``enqueue_job`` one at a time.

No worker runs, so only the producer path and Redis are measured. arq uses a JSON serializer
(routeq never pickles) and the same job document as its argument; routeq's one-at-a-time
``Client.submit`` is shown too, which validates each job with pydantic as a caller would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bench import arq_baseline, load
from bench.plan import Plan, Say
from bench.procs import Children, RedisProc
from bench.report import Row
from producer_client.client import Client
from producer_client.jobs import new_job_id

SECTION = "d enqueue"


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


async def routeq_chunks(url: str, n: int) -> float:
    async with Client.from_url(url) as client:
        return n / await _timed(lambda: load.submit(client, n, batch_id=None))


async def routeq_submit_many(url: str, n: int) -> float | None:
    async with Client.from_url(url) as client:
        submit_many = getattr(client, "submit_many", None)
        if submit_many is None:
            return None
        job = load.standard_job()
        specs = [(new_job_id(), job) for _ in range(n)]
        return n / await _timed(lambda: submit_many(specs))


async def routeq_one_by_one(url: str, n: int) -> float:
    job = load.standard_job()
    messages = [m.model_dump(exclude_none=True) for m in job.messages]
    context = job.context.model_dump(exclude_none=True)

    async def go(client: Client) -> None:
        for _ in range(n):
            await client.submit(messages, context=context, params={"max_tokens": 64})

    async with Client.from_url(url) as client:
        return n / await _timed(lambda: go(client))


async def arq_one_by_one(url: str, n: int) -> float:
    payload = load.standard_job().model_dump(mode="json")
    redis = await arq_baseline.pool(url)
    try:
        return n / await _timed(lambda: arq_baseline.enqueue(redis, n, function="complete", args=(payload,)))
    finally:
        await redis.aclose()


def _measure(
    redis: RedisProc, fn: Callable[[str, int], Coroutine[Any, Any, float | None]], n: int
) -> float | None:
    redis.flush()
    return asyncio.run(fn(redis.url, n))


def run(plan: Plan, say: Say) -> list[Row]:
    n = plan.enqueue_jobs
    single = max(100, n // 3)
    with Children() as ch:
        redis = ch.redis_server()
        arq_rate = _measure(redis, arq_one_by_one, n)
        many = _measure(redis, routeq_submit_many, n)
        chunks = _measure(redis, routeq_chunks, n)
        one = _measure(redis, routeq_one_by_one, single)
    say(f"enqueue: arq {arq_rate}, submit_many {many}, chunks {chunks}, one {one} jobs/s")
    base = f"arq enqueue_job one at a time ({n:,}, JSON)"
    rows = [
        Row(SECTION, f"Client.submit_jobs, chunks of {load.CHUNK} ({n:,} jobs)", chunks, "jobs/s", base,
            arq_rate, "higher"),
        Row(SECTION, f"Client.submit one at a time ({single:,} jobs)", one, "jobs/s", base, arq_rate,
            "higher", note="builds and validates each job, like a web request handler"),
    ]
    many_row = Row(SECTION, f"Client.submit_many, default chunk ({n:,} jobs)", many, "jobs/s", base, arq_rate,
                   "higher")
    if many is None:
        many_row = Row(SECTION, "Client.submit_many", None, "jobs/s", base, arq_rate, "higher",
                       status="pending", note="Client has no submit_many yet")
    return [many_row, *rows]
