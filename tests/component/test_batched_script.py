"""worker/batched_script.py on fakeredis and a real redis-server: calls made together share a round
trip, yet each caller gets exactly its own reply or error, and each call runs exactly once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from worker.batched_script import BatchedScript

# Counts its own runs, answers with its argument, and fails on request.
SCRIPT = """
redis.call('INCR', KEYS[1])
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
return ARGV[1]
"""


async def test_concurrent_calls_get_their_own_replies_and_errors(script_redis: Redis) -> None:
    script = BatchedScript(script_redis, SCRIPT)
    args = [str(i) if i % 7 else "fail" for i in range(50)]
    replies = await asyncio.gather(*(script(["runs"], [a]) for a in args), return_exceptions=True)
    for arg, reply in zip(args, replies, strict=True):
        if arg == "fail":
            assert isinstance(reply, ResponseError) and "asked to fail" in str(reply)
        else:
            assert reply == arg.encode()
    assert int(await script_redis.get("runs") or 0) == 50  # each call ran exactly once


async def test_calls_in_one_loop_turn_share_one_round_trip(script_redis: Redis) -> None:
    script = BatchedScript(script_redis, SCRIPT)
    await script(["runs"], ["warm"])  # loads the script
    sent: list[int] = []
    pipeline = script._pipeline

    async def counting(batch: list[object]) -> list[object]:
        sent.append(len(batch))
        return await pipeline(batch)  # type: ignore[arg-type]

    script._pipeline = counting  # type: ignore[method-assign]
    await asyncio.gather(*(script(["runs"], [str(i)]) for i in range(20)))
    assert sent == [20]


async def test_a_flushed_script_is_reloaded_and_nothing_runs_twice(script_redis: Redis) -> None:
    script = BatchedScript(script_redis, SCRIPT)
    await script(["runs"], ["first"])
    await script_redis.script_flush()
    replies = await asyncio.gather(*(script(["runs"], [str(i)]) for i in range(10)))
    assert replies == [str(i).encode() for i in range(10)]
    assert int(await script_redis.get("runs") or 0) == 11


async def test_a_connection_failure_reaches_every_caller() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    script = BatchedScript(dead, SCRIPT)
    try:
        results = await asyncio.gather(*(script(["runs"], ["x"]) for _ in range(5)), return_exceptions=True)
    finally:
        await dead.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results)


async def test_a_cancelled_caller_does_not_disturb_the_others(script_redis: Redis) -> None:
    script = BatchedScript(script_redis, SCRIPT)
    calls = [asyncio.ensure_future(script(["runs"], [str(i)])) for i in range(5)]
    calls[2].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    assert [d for i, d in enumerate(done) if i != 2] == [b"0", b"1", b"3", b"4"]


@pytest.mark.parametrize("size", [1, 300])
async def test_batches_larger_than_the_cap_are_split(script_redis: Redis, size: int) -> None:
    script = BatchedScript(script_redis, SCRIPT, max_batch=128)
    replies = await asyncio.gather(*(script(["runs"], [str(i)]) for i in range(size)))
    assert replies == [str(i).encode() for i in range(size)]
