"""enqueue.lua through the producer's own Client, on fakeredis and on a real redis-server.

Assertions read Redis itself: the envelope and its TTL, the queue entry and its score, the wake
message, and that every key lives under the client's prefix.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis

from producer_client.client import Client
from producer_client.contract import Job
from producer_client.errors import QueueFull
from producer_client.jobs import build_job
from producer_client.keys import Keys
from worker.claims import Claimer
from worker.envelope import Envelope, open_envelope

PREFIX = "enqtest:"
KEYS = Keys(PREFIX)
QUEUE = KEYS.queue("batch")
JOB_TTL_MS = 7 * 24 * 3600 * 1000  # the README's promise: a queued job waits up to a week


def client(redis: Redis, **kw: Any) -> Client:
    return Client(redis, prefix=PREFIX, queue="batch", **kw)


def job(name: str) -> Job:
    return build_job(prompt=f"prompt of {name}", metadata={"name": name})


async def queued(redis: Redis) -> list[str]:
    return [m.decode() for m in await redis.zrange(QUEUE, 0, -1)]


async def keys_outside_prefix(redis: Redis) -> list[bytes]:
    return [k async for k in redis.scan_iter() if not k.startswith(PREFIX.encode())]


async def test_a_job_gets_an_envelope_with_a_ttl_and_a_ready_queue_entry(script_redis: Redis) -> None:
    redis = script_redis
    before_ms = int(time.time() * 1000)
    (handle,) = await client(redis).submit_jobs([("j1", job("j1"))], batch_id="b-1")
    after_ms = int(time.time() * 1000)

    assert (handle.job_id, handle.added, handle.batch_id) == ("j1", True, "b-1")
    opened = open_envelope(await redis.get(KEYS.job("j1")))
    assert isinstance(opened, Envelope)
    assert opened.job == job("j1").model_dump(mode="json")
    assert opened.batch_id == "b-1"
    assert before_ms <= opened.enqueued_ms <= after_ms
    assert JOB_TTL_MS - 10_000 <= await redis.pttl(KEYS.job("j1")) <= JOB_TTL_MS
    assert await redis.zscore(QUEUE, "j1") == opened.enqueued_ms  # ready at once
    assert await keys_outside_prefix(redis) == []


async def test_a_queued_id_is_a_duplicate_and_changes_nothing(script_redis: Redis) -> None:
    redis = script_redis
    await client(redis).submit_jobs([("j1", job("first"))])
    stored, score = await redis.get(KEYS.job("j1")), await redis.zscore(QUEUE, "j1")

    (again,) = await client(redis).submit_jobs([("j1", job("second"))])

    assert again.added is False
    assert (await redis.get(KEYS.job("j1")), await redis.zscore(QUEUE, "j1")) == (stored, score)
    assert await queued(redis) == ["j1"]


async def test_the_same_id_twice_in_one_call_is_enqueued_once(script_redis: Redis) -> None:
    redis = script_redis
    pairs = [("j1", job("first")), ("j2", job("j2")), ("j1", job("second"))]
    handles = await client(redis).submit_jobs(pairs)
    assert [h.added for h in handles] == [True, True, False]
    opened = open_envelope(await redis.get(KEYS.job("j1")))
    assert isinstance(opened, Envelope) and opened.job["metadata"] == {"name": "first"}


async def test_an_id_that_is_running_or_finished_is_a_duplicate(script_redis: Redis) -> None:
    redis = script_redis
    await client(redis).submit_jobs([("running", job("running"))])
    await Claimer(redis, KEYS, [QUEUE], claim_s=60).claim([1])
    await redis.set(KEYS.result("finished"), b'{"job_id":"finished"}', ex=60)

    handles = await client(redis).submit_jobs([("running", job("x")), ("finished", job("y"))])

    assert [h.added for h in handles] == [False, False]
    assert await queued(redis) == ["running"]
    assert await redis.exists(KEYS.job("finished")) == 0


async def test_a_new_life_of_an_id_drops_its_stale_wakeup_and_try_count(script_redis: Redis) -> None:
    """An id whose result expired may be reused: an old done token would wake its waiter to
    nothing, and an old try count would make its first run look like a crash re-run."""
    redis = script_redis
    await cast(Awaitable[int], redis.rpush(KEYS.done("j1"), "1"))
    await redis.set(KEYS.tries("j1"), 3)
    (handle,) = await client(redis).submit_jobs([("j1", job("j1"))])
    assert handle.added
    assert await redis.exists(KEYS.done("j1"), KEYS.tries("j1")) == 0


async def test_a_full_queue_refuses_the_rest_and_a_resubmission_is_idempotent(script_redis: Redis) -> None:
    """The cap counts running jobs too (they stay in the zset); across several pipelined script
    calls exactly the first jobs up to the cap get in."""
    redis = script_redis
    names = [f"j{i}" for i in range(6)]
    await client(redis).submit_jobs([("running", job("running"))])
    await Claimer(redis, KEYS, [QUEUE], claim_s=60).claim([1])
    capped = client(redis, max_queue_depth=4)

    with pytest.raises(QueueFull, match="maximum depth 4"):
        await capped.submit_many([(n, job(n)) for n in names], chunk=2)

    assert sorted(await queued(redis)) == ["j0", "j1", "j2", "running"]
    assert await redis.exists(*(KEYS.job(n) for n in names[3:])) == 0
    await redis.zrem(QUEUE, "running")  # it finished: room for one more
    with pytest.raises(QueueFull):
        await capped.submit_many([(n, job(n)) for n in names], chunk=2)  # the same jobs again
    assert sorted(await queued(redis)) == ["j0", "j1", "j2", "j3"]
    await redis.zrem(QUEUE, "j0", "j1")
    handles = await capped.submit_many([(n, job(n)) for n in names[3:]], chunk=2)
    assert [h.added for h in handles] == [False, True, True]
    assert sorted(await queued(redis)) == ["j2", "j3", "j4", "j5"]


async def test_enqueueing_wakes_idle_workers_with_the_number_added(script_redis: Redis) -> None:
    redis = script_redis
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(KEYS.wake(QUEUE))
        await pubsub.get_message(timeout=1)  # the subscription's confirmation
        await client(redis).submit_jobs([("j1", job("j1")), ("j2", job("j2")), ("j1", job("j1"))])
        message = await pubsub.get_message(timeout=5)
        assert message is not None
        assert (message["channel"], message["data"]) == (KEYS.wake(QUEUE).encode(), b"2")
        await client(redis).submit_jobs([("j1", job("j1"))])  # nothing new: nobody to wake
        await client(redis).submit_jobs([("j3", job("j3"))])
        message = await pubsub.get_message(timeout=5)  # messages arrive in order: none came between
        assert message is not None and message["data"] == b"1"


async def test_a_lost_script_cache_is_reloaded(script_redis: Redis) -> None:
    redis = script_redis
    c = client(redis)
    await c.submit_jobs([("j1", job("j1"))])
    await redis.script_flush()  # a Redis restart or failover loses loaded scripts
    (handle,) = await c.submit_jobs([("j2", job("j2"))])
    assert handle.added and await queued(redis) == ["j1", "j2"]


async def test_prefixes_do_not_see_each_others_jobs(script_redis: Redis) -> None:
    redis = script_redis
    other = Client(redis, prefix="other:", queue="batch")
    assert (await client(redis).submit_jobs([("j1", job("a"))]))[0].added
    assert (await other.submit_jobs([("j1", job("b"))]))[0].added
    assert await redis.exists(KEYS.job("j1"), Keys("other:").job("j1")) == 2
    assert await queued(redis) == ["j1"] and await other.queue_depth() == 1


async def test_a_large_batch_in_many_chunks_keeps_every_payload(script_redis: Redis) -> None:
    redis = script_redis
    names = [f"j{i:03d}" for i in range(300)]
    handles = await client(redis).submit_many([{"id": n, "prompt": f"p {n}"} for n in names], chunk=64)
    assert all(h.added for h in handles) and len(set(h.batch_id for h in handles)) == 1
    assert sorted(await queued(redis)) == names
    raws = await redis.mget([KEYS.job(n) for n in names])
    assert [orjson.loads(r)["a"][0]["messages"][0]["content"] for r in raws] == [f"p {n}" for n in names]
