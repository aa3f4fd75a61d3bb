"""Bare arq, the baseline: its own CLI, its defaults, no-op and sleep jobs, a JSON serializer.

Workers run as ``python -m arq bench.arq_baseline.WorkerSettings`` (configured by the
``BENCH_ARQ_*`` environment variables), so poll_delay (0.5 s), queue_read_limit
(max(5 × max_jobs, 100)), claiming and logging are exactly what arq ships. Only the serializer is
changed, to JSON, because routeq never uses pickle and the comparison should not either.

The producer side reads arq's own result envelope (``et`` enqueue, ``st`` start, ``ft`` finish,
all epoch ms) instead of timing in the driver, so both systems are timed by their own stamps.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import default_queue_name, result_key_prefix

from bench.load import JobTimes

NOOP = "noop"
SLEEP = "sleep"


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def loads(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(raw)
    return value


async def noop(ctx: dict[str, Any], payload: Any = None) -> None:
    return None


async def sleep(ctx: dict[str, Any], seconds: float, payload: Any = None) -> None:
    await asyncio.sleep(seconds)


async def _announce(ctx: dict[str, Any]) -> None:
    print("arq worker ready", flush=True)


class WorkerSettings:
    """Read by arq's CLI; only what the benchmark must set differs from arq's defaults."""

    functions = [noop, sleep]
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_ARQ_REDIS_URL", "redis://127.0.0.1:1/0"))
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "10"))
    job_serializer = dumps
    job_deserializer = loads
    on_startup = _announce


async def pool(url: str) -> ArqRedis:
    return await create_pool(
        RedisSettings.from_dsn(url), job_serializer=dumps, job_deserializer=loads
    )


async def enqueue(
    redis: ArqRedis, n: int, *, function: str, args: Sequence[Any] = (), concurrency: int = 1
) -> list[str]:
    """``enqueue_job`` n times; ``concurrency`` > 1 keeps that many calls in flight at once."""
    ids: list[str] = []

    async def one() -> None:
        job = await redis.enqueue_job(function, *args)
        assert job is not None
        ids.append(job.job_id)

    if concurrency <= 1:
        for _ in range(n):
            await one()
        return ids
    for start in range(0, n, concurrency):
        await asyncio.gather(*(one() for _ in range(min(concurrency, n - start))))
    return ids


async def wait_drained(redis: ArqRedis, timeout_s: float, every_s: float = 0.02) -> None:
    """Until arq's queue is empty: arq removes a job from it in the step that stores its result."""
    deadline = time.monotonic() + timeout_s
    while await redis.zcard(default_queue_name):
        if time.monotonic() > deadline:
            left = await redis.zcard(default_queue_name)
            raise TimeoutError(f"arq: {left} job(s) still queued after {timeout_s:g}s")
        await asyncio.sleep(every_s)


async def job_times(redis: ArqRedis, ids: Sequence[str]) -> list[JobTimes]:
    """Enqueue/start/finish stamps of finished jobs, from arq's result envelopes."""
    out: list[JobTimes] = []
    for start in range(0, len(ids), 1000):
        raws = await redis.mget([result_key_prefix + i for i in ids[start : start + 1000]])
        for raw in raws:
            if raw is None:
                continue
            r = loads(raw)
            out.append(JobTimes(r["et"] / 1000, r["st"] / 1000, r["ft"] / 1000, bool(r["s"])))
    return out
