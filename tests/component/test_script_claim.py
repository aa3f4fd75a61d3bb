"""claim.lua through the worker's own Claimer, on fakeredis and on a real redis-server.

Jobs are enqueued through the producer's Client (the bytes a worker really claims); a deferred
job is written as the README tells other producers to (SET the envelope, ZADD a future score).
Time is given to the script as ``now_ms`` computed from the real clock, so a claim's lease can be
run out without sleeping. Assertions read Redis itself: scores, try counters, TTLs, key names.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from redis.asyncio import Redis

from producer_client.client import Client
from producer_client.contract import Job
from producer_client.jobs import build_job
from producer_client.keys import Keys
from producer_client.wire import envelope
from worker.claims import TRY_TTL_MS, Claimed, Claimer, Control
from worker.envelope import Envelope, open_envelope

PREFIX = "claimtest:"
KEYS = Keys(PREFIX)
HIGH, LOW = KEYS.queue("interactive"), KEYS.queue("batch")
CLAIM_S = 30.0
CLAIM_MS = int(CLAIM_S * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


def claimer(redis: Redis) -> Claimer:
    return Claimer(redis, KEYS, [HIGH, LOW], claim_s=CLAIM_S)


def job(name: str) -> Job:
    return build_job(prompt=f"prompt of {name}", metadata={"name": name})


async def submit(redis: Redis, queue: str, *names: str) -> None:
    handles = await Client(redis, prefix=PREFIX, queue=queue).submit_jobs([(n, job(n)) for n in names])
    assert all(h.added for h in handles)


async def defer(redis: Redis, queue: str, name: str, ready_ms: int) -> None:
    """A job that becomes ready at ``ready_ms`` (another producer's scheduled job)."""
    await redis.set(KEYS.job(name), envelope(job(name), enqueue_ms=now_ms()), px=TRY_TTL_MS)
    await redis.zadd(KEYS.queue(queue), {name: ready_ms})


async def score(redis: Redis, queue: str, name: str) -> float | None:
    value: float | None = await redis.zscore(queue, name)
    return value


async def keys_outside_prefix(redis: Redis) -> list[bytes]:
    return [k async for k in redis.scan_iter() if not k.startswith(PREFIX.encode())]


def ids(jobs: list[Claimed]) -> list[str]:
    return [j.job_id for j in jobs]


async def test_claims_the_top_priority_class_first_and_the_oldest_job_within_it(script_redis: Redis) -> None:
    await submit(script_redis, "batch", "low-1")
    await submit(script_redis, "interactive", "high-1")
    await submit(script_redis, "interactive", "high-2")
    await script_redis.zadd(HIGH, {"high-2": now_ms() - 5000}, xx=True)  # ready longer: goes first
    c = claimer(script_redis)

    _, first = await c.claim([2, 2])
    assert ids(first) == ["high-2", "high-1"]
    assert [j.queue_key for j in first] == [HIGH, HIGH]
    _, second = await c.claim([2, 2])
    assert ids(second) == ["low-1"] and second[0].queue_key == LOW


async def test_caps_are_cumulative_per_priority_class(script_redis: Redis) -> None:
    """caps[i] bounds what the first i + 1 queues give together: room reserved for interactive
    work is not spent on batch work."""
    await submit(script_redis, "interactive", "high-1")
    await submit(script_redis, "batch", "low-1", "low-2")
    c = claimer(script_redis)

    _, jobs = await c.claim([1, 2])
    assert ids(jobs) == ["high-1", "low-1"]
    _, none_for_batch = await c.claim([1, 0])
    assert none_for_batch == []
    assert await script_redis.zscore(LOW, "low-2") is not None


async def test_a_claim_hands_back_envelope_try_and_no_result_and_leases_by_score(script_redis: Redis) -> None:
    await submit(script_redis, "interactive", "j1")
    stored = await script_redis.get(KEYS.job("j1"))
    at = now_ms()

    _, (claimed,) = await claimer(script_redis).claim([1, 1], now_ms=at)

    assert claimed == Claimed("j1", HIGH, 1, stored, False)
    opened = open_envelope(claimed.envelope)
    assert isinstance(opened, Envelope) and opened.job["metadata"] == {"name": "j1"}
    assert await score(script_redis, HIGH, "j1") == at + CLAIM_MS  # still queued, leased until then
    assert int(await script_redis.get(KEYS.tries("j1"))) == 1
    assert 0 < await script_redis.pttl(KEYS.tries("j1")) <= TRY_TTL_MS
    assert await keys_outside_prefix(script_redis) == []


async def test_control_reports_the_active_versions_or_none(script_redis: Redis) -> None:
    c = claimer(script_redis)
    control, jobs = await c.claim([1, 1])
    assert (control, jobs) == (Control(None, None), [])

    await script_redis.set(KEYS.rules_active, "7")
    await script_redis.set(KEYS.catalog_active, "3")
    control, _ = await c.claim([1, 1])
    assert control == Control("7", "3") == await c.control()


async def test_a_claimed_job_is_not_claimed_again_until_its_lease_runs_out(script_redis: Redis) -> None:
    await submit(script_redis, "interactive", "j1")
    c = claimer(script_redis)
    at = now_ms()
    _, first = await c.claim([1, 1], now_ms=at)
    assert ids(first) == ["j1"]

    _, during = await c.claim([5, 5], now_ms=at + CLAIM_MS - 1)
    assert during == []

    _, after = await c.claim([5, 5], now_ms=at + CLAIM_MS)
    assert [(j.job_id, j.job_try) for j in after] == [("j1", 2)]
    assert int(await script_redis.get(KEYS.tries("j1"))) == 2


async def test_concurrent_claimers_take_each_job_exactly_once(script_redis: Redis) -> None:
    names = [f"j{i}" for i in range(40)]
    await submit(script_redis, "batch", *names)
    claimers = [claimer(script_redis) for _ in range(8)]
    at = now_ms()

    replies = await asyncio.gather(*(c.claim([0, 3], now_ms=at) for c in claimers for _ in range(3)))

    taken = [j.job_id for _, jobs in replies for j in jobs]
    assert sorted(taken) == sorted(names)  # 8 x 3 claims of up to 3 cover 40 jobs, none twice
    assert all(j.job_try == 1 for _, jobs in replies for j in jobs)


async def test_a_deferred_job_waits_for_its_score(script_redis: Redis) -> None:
    await submit(script_redis, "batch", "now")
    at = now_ms()
    await defer(script_redis, "interactive", "later", at + 60_000)
    c = claimer(script_redis)

    _, jobs = await c.claim([1, 1], now_ms=at)
    assert ids(jobs) == ["now"]  # the lower class runs rather than wait for the deferred one
    assert await script_redis.exists(KEYS.tries("later")) == 0

    _, jobs = await c.claim([1, 1], now_ms=at + 60_000)
    assert [(j.job_id, j.job_try) for j in jobs] == [("later", 1)]


async def test_a_rerun_of_a_job_with_a_result_says_so_and_drop_removes_it(script_redis: Redis) -> None:
    await submit(script_redis, "interactive", "j1")
    c = claimer(script_redis)
    at = now_ms()
    await c.claim([1, 1], now_ms=at)
    await script_redis.set(KEYS.result("j1"), b'{"job_id":"j1"}', ex=60)  # the first run finished...
    # ...but its worker died before dropping the job, so the lease runs out and it is claimed again.
    _, (rerun,) = await c.claim([1, 1], now_ms=at + CLAIM_MS)

    assert (rerun.job_try, rerun.has_result) == (2, True)
    await c.drop(rerun)
    assert await script_redis.exists(KEYS.job("j1"), KEYS.tries("j1")) == 0
    assert await script_redis.zscore(HIGH, "j1") is None
    assert await script_redis.get(KEYS.result("j1")) == b'{"job_id":"j1"}'


async def test_a_rerun_without_a_result_is_not_reported_as_having_one(script_redis: Redis) -> None:
    await submit(script_redis, "interactive", "j1")
    c = claimer(script_redis)
    at = now_ms()
    await c.claim([1, 1], now_ms=at)
    _, (rerun,) = await c.claim([1, 1], now_ms=at + CLAIM_MS)
    assert (rerun.job_try, rerun.has_result) == (2, False)


async def test_an_id_queued_without_an_envelope_is_claimed_with_none(script_redis: Redis) -> None:
    await script_redis.zadd(HIGH, {"ghost": now_ms()})
    _, (claimed,) = await claimer(script_redis).claim([1, 1])
    assert (claimed.job_id, claimed.envelope, claimed.job_try) == ("ghost", None, 1)
    assert not isinstance(open_envelope(claimed.envelope), Envelope)


async def test_release_makes_a_claimed_job_ready_again(script_redis: Redis) -> None:
    await submit(script_redis, "interactive", "j1")
    c = claimer(script_redis)
    _, (claimed,) = await c.claim([1, 1])
    await c.release(claimed)
    _, again = await c.claim([1, 1])
    assert [(j.job_id, j.job_try) for j in again] == [("j1", 2)]


async def test_the_envelope_is_returned_byte_for_byte(script_redis: Redis) -> None:
    """Non-ASCII text survives the trip through Lua unchanged on both servers."""
    text = "héllo — 日本語 \u2028 emoji 🙂"
    raw = envelope(build_job(prompt=text), enqueue_ms=now_ms())
    await script_redis.set(KEYS.job("u"), raw)
    await script_redis.zadd(HIGH, {"u": now_ms()})
    _, (claimed,) = await claimer(script_redis).claim([1, 1])
    assert claimed.envelope == raw
    assert orjson.loads(claimed.envelope)["a"][0]["messages"][0]["content"] == text


async def test_an_id_queued_by_hand_after_its_result_is_not_run_again(script_redis: Redis) -> None:
    """A producer that writes the job key and ZADD itself (not enqueue.lua, which refuses a known id)
    re-queues a finished job: its first claim already says it has a result, so it is not billed twice."""
    await script_redis.set(KEYS.result("done-1"), b'{"job_id":"done-1"}', ex=60)
    await script_redis.set(KEYS.job("done-1"), b'{"t":null,"f":"complete","a":[{}],"k":{},"et":1}', ex=60)
    await script_redis.zadd(HIGH, {"done-1": now_ms() - 1})
    _, (claimed,) = await claimer(script_redis).claim([1, 1], now_ms=now_ms())
    assert (claimed.job_try, claimed.has_result) == (1, True)
