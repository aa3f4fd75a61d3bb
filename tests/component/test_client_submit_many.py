"""Client.submit_many on fakeredis: validation first, chunked pipelined enqueue, idempotency per id."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from producer_client import Client, InvalidJob
from producer_client.jobs import build_job
from producer_client.keys import Keys

PREFIX = "t:"
KEYS = Keys(PREFIX)
CTX = {"user_tier": "pro", "task_type": "chat"}


@pytest.fixture()
def client(redis: Redis) -> Client:
    return Client(redis, prefix=PREFIX, queue="batch")


def specs(n: int, *, start: int = 0, ids: bool = True) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(start, start + n):
        spec: dict[str, Any] = {"prompt": f"question {i}", "context": CTX, "metadata": {"i": i}}
        if ids:
            spec["id"] = f"job-{i}"
        out.append(spec)
    return out


async def envelope_of(redis: Redis, job_id: str) -> dict[str, Any]:
    raw = await redis.get(KEYS.job(job_id))
    assert raw is not None, f"no payload for {job_id}"
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


async def test_enqueues_every_job_with_its_batch_id(client: Client, redis: Redis) -> None:
    handles = await client.submit_many(specs(30), batch_id="b-1")
    assert [h.job_id for h in handles] == [f"job-{i}" for i in range(30)]
    assert all(h.added and h.batch_id == "b-1" for h in handles)
    assert await redis.zcard(KEYS.queue("batch")) == 30
    env = await envelope_of(redis, "job-7")
    assert env["f"] == "complete" and env["k"] == {"batch_id": "b-1"}
    assert env["a"][0]["messages"] == [{"role": "user", "content": "question 7", "tool_calls": None}]
    assert env["a"][0]["metadata"] == {"i": 7}


async def test_same_ids_twice_enqueue_once(client: Client, redis: Redis) -> None:
    first = await client.submit_many(specs(40), batch_id="b-1", chunk=7)
    again = await client.submit_many(specs(45), batch_id="b-1", chunk=7)  # 40 known + 5 new
    assert all(h.added for h in first)
    assert [h.added for h in again] == [False] * 40 + [True] * 5
    assert await redis.zcard(KEYS.queue("batch")) == 45


async def test_an_id_with_a_result_is_not_enqueued_again(client: Client, redis: Redis) -> None:
    await redis.set(KEYS.result("job-3"), b"{}")  # finished earlier; arq's payload is gone
    handles = await client.submit_many(specs(5))
    assert [h.added for h in handles] == [True, True, True, False, True]
    assert not await redis.exists(KEYS.job("job-3"))


async def test_generates_ids_and_a_batch_id_when_missing(client: Client, redis: Redis) -> None:
    handles = await client.submit_many(specs(3, ids=False))
    assert len({h.job_id for h in handles}) == 3
    (batch_id,) = {h.batch_id for h in handles}
    assert batch_id
    env = await envelope_of(redis, handles[0].job_id)
    assert env["k"] == {"batch_id": batch_id}


async def test_accepts_id_job_pairs(client: Client, redis: Redis) -> None:
    job = build_job(prompt="hi", context=CTX)
    handles = await client.submit_many([("a-1", job), ("a-2", job)], queue="interactive")
    assert [h.job_id for h in handles] == ["a-1", "a-2"]
    assert await redis.zcard(KEYS.queue("interactive")) == 2


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"id": "job-3", "messages": "not a list"}, "job 3 (id 'job-3'): messages: expected a list"),
        ({"id": "job-3", "prompt": "x", "contxt": {}}, "job 3 (id 'job-3'): contxt: unknown field"),
        ({"id": "has space", "prompt": "x"}, "job 3: id: 'has space' is not a valid id"),
        ({"prompt": "x", "context": {"max_latency_ms": -1}}, "job 3: context.max_latency_ms"),
        ({"id": "job-3"}, "job 3 (id 'job-3'): messages: give messages or a prompt"),
        (("", build_job(prompt="x")), "job 3: id: '' is not a valid id"),
    ],
)
async def test_one_invalid_job_enqueues_nothing(client: Client, redis: Redis, bad: Any, needle: str) -> None:
    jobs: list[Any] = [*specs(3), bad, *specs(3, start=4)]
    with pytest.raises(InvalidJob) as err:
        await client.submit_many(jobs)
    assert needle in str(err.value)
    assert await redis.zcard(KEYS.queue("batch")) == 0
    assert await redis.keys("t:job:*") == []


async def test_an_invalid_batch_id_is_refused(client: Client) -> None:
    with pytest.raises(InvalidJob, match="batch_id"):
        await client.submit_many(specs(1), batch_id="no spaces please")


async def test_chunks_are_pipelined_several_per_round_trip(client: Client, redis: Redis) -> None:
    rounds: list[int] = []
    real_pipeline = redis.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute

        async def execute(*a: Any, **kw: Any) -> Any:
            rounds.append(len(pipe.command_stack))
            return await real_execute(*a, **kw)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe

    redis.pipeline = counting_pipeline  # type: ignore[method-assign]
    handles = await client.submit_many(specs(100), chunk=5)  # 20 script calls
    assert all(h.added for h in handles)
    assert rounds == [8, 8, 4]
    assert await redis.zcard(KEYS.queue("batch")) == 100


async def test_survives_redis_forgetting_the_script(client: Client, redis: Redis) -> None:
    await client.submit_many(specs(2))
    await redis.script_flush()
    handles = await client.submit_many(specs(4))
    assert [h.added for h in handles] == [False, False, True, True]


async def test_wakes_idle_workers_once_per_script_call(client: Client, redis: Redis) -> None:
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(KEYS.wake(KEYS.queue("batch")))
    await client.submit_many(specs(10), chunk=4)
    await client.submit_many(specs(10), chunk=4)  # all duplicates: no wake-up
    counts = []
    for _ in range(10):  # the first read only swallows the subscribe confirmation
        msg = await pubsub.get_message(timeout=0.05)
        if msg is not None:
            counts.append(int(msg["data"]))
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert counts == [4, 4, 2]


async def test_submit_keeps_its_contract(client: Client, redis: Redis) -> None:
    job_id = await client.submit(prompt="one", context=CTX, job_id="solo-1")
    assert job_id == "solo-1"
    assert await client.submit(prompt="one", context=CTX, job_id="solo-1") == "solo-1"
    assert await redis.zcard(KEYS.queue("batch")) == 1
    env = await envelope_of(redis, "solo-1")
    assert env["k"] == {}  # a single job carries no batch id
    with pytest.raises(InvalidJob, match="job_id"):
        await client.submit(prompt="one", job_id="bad id")
