"""The dead-letter scripts (claim, restore and prune in worker/deadletters.py) on fakeredis and on a
real redis-server, through ``requeue`` and ``list_failed``.

Failed jobs are written by the worker's ResultStore (finish.lua indexes them and keeps the job),
so the scripts under test start from the state production leaves. A refused retry must leave
Redis exactly as it was: that is checked on a snapshot of every key, its value and its TTL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from producer_client.client import Client
from producer_client.contract import Job, Routing, Usage, parse_result
from producer_client.jobs import build_job
from producer_client.keys import Keys
from worker.deadletters import RetryRefused, list_failed, requeue
from worker.envelope import Envelope, open_envelope
from worker.outcome import JobClock, Outcome
from worker.results import Finish, ResultStore

PREFIX = "dltest:"
KEYS = Keys(PREFIX)
QUEUE = KEYS.queue("batch")
TTL_S = 3600
MODEL = "openai/gpt-4o"


def client(redis: Redis, **kw: Any) -> Client:
    return Client(redis, prefix=PREFIX, queue="batch", **kw)


def job(job_id: str) -> Job:
    return build_job(prompt=f"prompt of {job_id}", context={"user_id": "u-1"}, metadata={"n": job_id})


async def fail(redis: Redis, job_id: str, *, keep: bool = True) -> None:
    routing = Routing(rule="r", rules_version="v1", model=MODEL, chain=[MODEL], max_tokens=8)
    result = Outcome(job_id, 1).failed(JobClock(enqueued_at=None), "upstream_error", "boom", routing=routing)
    store = ResultStore(redis, KEYS, ttl_s=TTL_S, rollup_ttl_s=0)
    assert (await store.finish(Finish(result, QUEUE, job=job(job_id) if keep else None))).written


async def snapshot(redis: Redis) -> dict[bytes, tuple[Any, bool]]:
    """Every key: its value (read by type) and whether it has a TTL."""
    out: dict[bytes, tuple[Any, bool]] = {}
    async for key in redis.scan_iter():
        kind = (await redis.type(key)).decode()
        value: Any
        if kind == "string":
            value = await redis.get(key)
        elif kind == "list":
            value = await cast(Awaitable[list[bytes]], redis.lrange(key, 0, -1))
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            value = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(key))
        elif kind == "set":
            value = sorted(await cast(Awaitable[set[bytes]], redis.smembers(key)))
        else:
            value = kind
        out[key] = (value, await redis.ttl(key) > 0)
    return out


async def keys_outside_prefix(redis: Redis) -> list[bytes]:
    return [k async for k in redis.scan_iter() if not k.startswith(b"dltest:")]


async def test_a_retry_moves_the_failed_job_back_to_the_queue_under_its_own_id(script_redis: Redis) -> None:
    redis = script_redis
    await fail(redis, "j1")

    await requeue(client(redis), "j1")

    assert await redis.exists(KEYS.result("j1"), KEYS.done("j1"), KEYS.failed_job("j1")) == 0
    assert await redis.zscore(KEYS.failed, "j1") is None
    opened = open_envelope(await redis.get(KEYS.job("j1")))
    assert isinstance(opened, Envelope) and opened.job == job("j1").model_dump(mode="json")
    assert await redis.pttl(KEYS.job("j1")) > 0
    assert await redis.zscore(QUEUE, "j1") is not None
    assert await keys_outside_prefix(redis) == []


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        ("unknown", "not in the failed-job index"),
        ("no_document", "job document is gone"),
        ("queued", "already queued or running"),
    ],
)
async def test_a_refused_retry_changes_nothing(script_redis: Redis, setup: str, why: str) -> None:
    redis = script_redis
    await fail(redis, "j1", keep=setup != "no_document")
    if setup == "queued":
        await redis.set(KEYS.job("j1"), b"{}", ex=60)  # someone enqueued the id meanwhile
    before = await snapshot(redis)

    with pytest.raises(RetryRefused, match=why):
        await requeue(client(redis), "other" if setup == "unknown" else "j1")

    assert await snapshot(redis) == before


async def test_a_full_queue_puts_the_dead_letter_back_as_it_was(script_redis: Redis) -> None:
    redis = script_redis
    await fail(redis, "j1")
    await client(redis).submit_jobs([("blocker", job("blocker"))])
    before = await snapshot(redis)
    result_ttl = await redis.ttl(KEYS.result("j1"))

    with pytest.raises(RetryRefused, match="maximum depth 1"):
        await requeue(client(redis, max_queue_depth=1), "j1")

    assert await snapshot(redis) == before
    assert result_ttl - 2 <= await redis.ttl(KEYS.result("j1")) <= result_ttl
    assert await redis.ttl(KEYS.done("j1")) > 0 and await redis.ttl(KEYS.failed_job("j1")) > 0


async def test_concurrent_retries_of_one_job_enqueue_it_once(script_redis: Redis) -> None:
    redis = script_redis
    await fail(redis, "j1")
    outcomes = await asyncio.gather(*(requeue(client(redis), "j1") for _ in range(6)), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, RetryRefused) for o in outcomes if o is not None)
    assert await redis.zrange(QUEUE, 0, -1) == [b"j1"]


async def test_listing_prunes_entries_whose_result_expired_and_keeps_the_rest(script_redis: Redis) -> None:
    redis = script_redis
    await fail(redis, "old")
    await fail(redis, "new")
    now_ms = int(time.time() * 1000)
    entries = {"old": now_ms - 2000, "new": now_ms - 1000, "gone-1": now_ms, "gone-2": now_ms}
    await redis.zadd(KEYS.failed, entries)  # the gone ones have no result

    listed = await list_failed(redis, KEYS)

    assert [d.job_id for d in listed] == ["new", "old"]
    assert listed[0].error_type == "upstream_error" and listed[0].model == MODEL
    assert sorted(await redis.zrange(KEYS.failed, 0, -1)) == [b"new", b"old"]


async def test_a_result_written_after_a_retry_is_the_one_waiters_get(script_redis: Redis) -> None:
    """The retry removed the old result and done list, so the next finish writes (SET NX) and
    wakes: a waiter on the id gets the new result, not the failure."""
    redis = script_redis
    await fail(redis, "j1")
    await requeue(client(redis), "j1")
    routing = Routing(rule="r", rules_version="v1", model=MODEL, chain=[MODEL], max_tokens=8)
    ok = Outcome("j1", 1).succeeded(JobClock(enqueued_at=None), content="fine", routing=routing,
                                    message={"role": "assistant", "content": "fine"},
                                    usage=Usage(prompt_tokens=1, completion_tokens=1))
    assert (await ResultStore(redis, KEYS, ttl_s=TTL_S, rollup_ttl_s=0).finish(Finish(ok, QUEUE))).written
    assert parse_result(await redis.get(KEYS.result("j1"))).status == "succeeded"
    assert (await client(redis).result("j1", timeout=5)).content == "fine"
