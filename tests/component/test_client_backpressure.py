"""Backpressure on fakeredis: a capped queue refuses (``raise``) or waits for room (``wait``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from producer_client import Client, QueueFull
from producer_client.keys import Keys

PREFIX = "t:"
KEYS = Keys(PREFIX)
QUEUE = KEYS.queue("batch")


def capped(redis: Redis, depth: int, **kwargs: Any) -> Client:
    return Client(redis, prefix=PREFIX, queue="batch", max_queue_depth=depth, **kwargs)


def specs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"job-{i}", "prompt": f"q{i}"} for i in range(start, start + n)]


async def drain(redis: Redis, *, every_s: float, seen: list[int], stop: asyncio.Event) -> None:
    """A stand-in worker: finishes the oldest queued job now and then, recording the depth first."""
    while not stop.is_set():
        seen.append(await redis.zcard(QUEUE))
        oldest = await redis.zrange(QUEUE, 0, 0)
        if oldest:
            await redis.zrem(QUEUE, oldest[0])
            await redis.delete(KEYS.job(oldest[0].decode()))
            await redis.set(KEYS.result(oldest[0].decode()), b"{}")
        await asyncio.sleep(every_s)


async def test_submit_raises_when_the_queue_is_full(redis: Redis) -> None:
    client = capped(redis, 5)
    for i in range(5):
        await client.submit(prompt="x", job_id=f"j{i}")
    with pytest.raises(QueueFull, match=r"maximum depth 5.*first: j5"):
        await client.submit(prompt="x", job_id="j5")
    assert await redis.zcard(QUEUE) == 5
    assert not await redis.exists(KEYS.job("j5"))
    # A duplicate of a queued job is no new work: accepted even when full.
    assert await client.submit(prompt="x", job_id="j0") == "j0"


async def test_submit_many_raise_keeps_what_fit_and_a_retry_is_safe(redis: Redis) -> None:
    client = capped(redis, 5)
    with pytest.raises(QueueFull) as err:
        await client.submit_many(specs(12), chunk=4)
    assert "7 job(s) not enqueued (first: job-5), 5 enqueued or already known" in str(err.value)
    assert sorted(await redis.zrange(QUEUE, 0, -1)) == sorted(f"job-{i}".encode() for i in range(5))
    await redis.delete(QUEUE)  # the worker took them all
    handles = await client.submit_many(specs(10), chunk=4)
    assert [h.added for h in handles] == [False] * 5 + [True] * 5


async def test_per_call_policy_overrides_the_client_default(redis: Redis) -> None:
    client = capped(redis, 2, on_full="wait", full_wait_s=5)
    await client.submit_many(specs(2))
    t0 = time.monotonic()
    with pytest.raises(QueueFull):
        await client.submit(prompt="x", job_id="now", on_full="raise")
    assert time.monotonic() - t0 < 1


async def test_wait_enqueues_everything_as_room_appears_never_above_the_cap(redis: Redis) -> None:
    client = capped(redis, 5, on_full="wait")
    seen: list[int] = []
    stop = asyncio.Event()
    drainer = asyncio.create_task(drain(redis, every_s=0.01, seen=seen, stop=stop))
    handles = await client.submit_many(specs(40), chunk=3)
    stop.set()
    await drainer
    assert all(h.added for h in handles)
    assert max(seen) <= 5
    finished = len(await redis.keys(KEYS.result("*")))
    assert finished + await redis.zcard(QUEUE) == 40


async def test_wait_gives_up_after_full_wait_s_without_progress(redis: Redis) -> None:
    client = capped(redis, 3, on_full="wait", full_wait_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(QueueFull, match=r"for 0.3s: 2 job\(s\) not enqueued"):
        await client.submit_many(specs(5))
    assert 0.3 <= time.monotonic() - t0 < 1.5
    assert await redis.zcard(QUEUE) == 3


async def test_wait_time_counts_from_the_last_progress(redis: Redis) -> None:
    # The whole call takes longer than full_wait_s, but room appears more often than that.
    client = capped(redis, 2, on_full="wait", full_wait_s=0.25)
    seen: list[int] = []
    stop = asyncio.Event()
    drainer = asyncio.create_task(drain(redis, every_s=0.05, seen=seen, stop=stop))
    t0 = time.monotonic()
    handles = await client.submit_many(specs(14))
    stop.set()
    await drainer
    assert time.monotonic() - t0 > 0.25
    assert all(h.added for h in handles)


def test_from_url_reads_the_depth_and_prefix_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTEQ_MAX_QUEUE_DEPTH", "250")
    monkeypatch.setenv("ROUTEQ_PREFIX", "env:")
    client = Client.from_url("redis://127.0.0.1:1/0")
    assert client.max_queue_depth == 250 and client.keys.prefix == "env:"
    explicit = Client.from_url("redis://127.0.0.1:1/0", max_queue_depth=0, prefix="mine:")
    assert explicit.max_queue_depth == 0 and explicit.keys.prefix == "mine:"
    monkeypatch.setenv("ROUTEQ_MAX_QUEUE_DEPTH", "lots")
    with pytest.raises(ValueError, match="ROUTEQ_MAX_QUEUE_DEPTH='lots'"):
        Client.from_url("redis://127.0.0.1:1/0")
