"""finish.lua through the worker's own ResultStore, on fakeredis and on a real redis-server.

Each job is enqueued by the producer's Client and claimed by the worker's Claimer, and budgets
are held by the worker's Spend, so the script finds the keys production leaves for it. Expected
values are computed here from the inputs (the charge, the TTLs, the documented rollup field
names), not with the writer's helpers; assertions read Redis itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from producer_client.client import Client
from producer_client.contract import ExperimentInfo, Job, Result, Routing, Usage, parse_result
from producer_client.jobs import build_job
from producer_client.keys import Keys
from worker.budget import applicable, parse_budgets
from worker.budget.ledger import BudgetLedger
from worker.claims import Claimer
from worker.outcome import JobClock, Outcome
from worker.results import Finish, Finished, ResultStore
from worker.spend import Hold, Spend

PREFIX = "finishtest:"
KEYS = Keys(PREFIX)
QUEUE = KEYS.queue("interactive")
TTL_S = 3600
ROLLUP_TTL_S = 2 * 86_400
FEEDBACK_TTL_S = 86_400
KEEP_S = 7200
MODEL, FALLBACK = "openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct"
COST_USD, COST_NANO = "0.000000300", 300
WORST_NANO = 1000
PROMPT = "secret prompt text"


def store(redis: Redis, **overrides: Any) -> ResultStore:
    settings: dict[str, Any] = {
        "ttl_s": TTL_S, "rollup_ttl_s": ROLLUP_TTL_S, "feedback_ttl_s": FEEDBACK_TTL_S,
        "reservation_keep_s": KEEP_S, "retry_for_s": 0.0,
    }
    return ResultStore(redis, KEYS, **{**settings, **overrides})


def job(tenant: str = "acme") -> Job:
    return build_job(prompt=PROMPT, context={"user_id": "u-1", "tenant": tenant, "task_type": "chat"})


def routing(*, served: str = MODEL, experiment: ExperimentInfo | None = None) -> Routing:
    return Routing(rule="chat-rule", rules_version="v-test", task_type="chat", model=MODEL,
                   chain=[MODEL, FALLBACK], max_tokens=64, model_served=served, experiment=experiment)


def succeeded(job_id: str, *, try_: int = 1, content: str = "ok", **kw: Any) -> Result:
    return Outcome(job_id, try_).succeeded(
        JobClock(enqueued_at=time.time()), content=content,
        message={"role": "assistant", "content": content}, routing=routing(**kw),
        usage=Usage(prompt_tokens=12, completion_tokens=5, cost_usd=COST_USD, cost_source="usage.cost"),
    )


def failed(job_id: str) -> Result:
    return Outcome(job_id, 1).failed(JobClock(enqueued_at=time.time()), "upstream_error", "all models failed",
                                     routing=routing())


async def queued_and_claimed(redis: Redis, job_id: str, batch_id: str | None = None) -> None:
    """The state a running job leaves: envelope, try counter, leased queue entry."""
    await Client(redis, prefix=PREFIX).submit_jobs([(job_id, job())], batch_id=batch_id)
    _, claimed = await Claimer(redis, KEYS, [QUEUE], claim_s=60).claim([10])
    assert job_id in [c.job_id for c in claimed]


def budget_lines() -> Any:
    raw = [{"name": "all", "scope": "global", "limit_usd": "0.000010000", "window": "day"},
           {"name": "per-user", "scope": "user", "limit_usd": "0.000005000", "window": "day"}]
    return applicable(parse_budgets(raw), {"user_id": "u-1"}, datetime.now(UTC), "UTC", prefix=PREFIX)


async def hold(redis: Redis, rid: str) -> Hold:
    spend = Spend(BudgetLedger(redis, prefix=PREFIX, keep_s=KEEP_S))
    held = await spend.reserve(rid, budget_lines(), WORST_NANO)
    assert isinstance(held, Hold) and held.active
    return held


async def counters(redis: Redis) -> list[tuple[int, int]]:
    out = []
    for line in budget_lines():
        spent, reserved = await cast(Awaitable[list[Any]], redis.hmget(line.key, ["spent", "reserved"]))
        out.append((int(spent or 0), int(reserved or 0)))
    return out


async def rollup(redis: Redis) -> dict[str, int]:
    """Every rollup hour hash of the test, summed (a test may straddle an hour)."""
    out: dict[str, int] = {}
    async for key in redis.scan_iter(match=f"{PREFIX}rollup:[0-9]*"):
        for name, value in (await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(key))).items():
            out[name.decode()] = out.get(name.decode(), 0) + int(value)
    return out


async def items(redis: Redis, key: str) -> list[bytes]:
    return await cast(Awaitable[list[bytes]], redis.lrange(key, 0, -1))


async def ttls(redis: Redis, pattern: str) -> list[int]:
    return [await redis.ttl(k) async for k in redis.scan_iter(match=pattern)]


async def keys_outside_prefix(redis: Redis) -> list[bytes]:
    return [k async for k in redis.scan_iter() if not k.startswith(PREFIX.encode())]


def within(ttl: int, limit: int) -> bool:
    return limit - 5 <= ttl <= limit  # set just now: a busy machine may take a few seconds


# --- result, wake-up, job keys ------------------------------------------------------------------


async def test_writes_the_result_and_its_wakeups_with_ttls_and_drops_the_job(script_redis: Redis) -> None:
    redis = script_redis
    await queued_and_claimed(redis, "j1", batch_id="b-1")
    result = succeeded("j1")

    done = await store(redis).finish(Finish(result, QUEUE, "b-1", job=job()))

    assert done == Finished(True, None)
    assert parse_result(await redis.get(KEYS.result("j1"))) == result
    assert await items(redis, KEYS.done("j1")) == [b"1"]
    assert within(await redis.ttl(KEYS.result("j1")), TTL_S)
    assert within(await redis.ttl(KEYS.done("j1")), TTL_S)
    assert await items(redis, KEYS.batch_done("b-1")) == [b"j1"]
    assert within(await redis.ttl(KEYS.batch_done("b-1")), TTL_S)
    assert await redis.exists(KEYS.job("j1"), KEYS.tries("j1"), KEYS.failed, KEYS.failed_job("j1")) == 0
    assert await redis.zscore(QUEUE, "j1") is None
    assert await keys_outside_prefix(redis) == []


async def test_a_second_finish_of_one_job_writes_nothing_and_charges_nothing(script_redis: Redis) -> None:
    redis = script_redis
    await queued_and_claimed(redis, "j1")
    h = await hold(redis, "j1#1")
    first = Finish(succeeded("j1", content="first"), QUEUE, hold=h, charge_nano=COST_NANO, job=job())
    await store(redis).finish(first)
    before = (await redis.get(KEYS.result("j1")), await counters(redis), await rollup(redis))

    again = await store(redis).finish(Finish(succeeded("j1", content="second"), QUEUE, hold=h,
                                             charge_nano=COST_NANO, job=job()))

    assert again.written is False
    assert again.settlement is not None and again.settlement.replayed
    assert (await redis.get(KEYS.result("j1")), await counters(redis), await rollup(redis)) == before
    assert await counters(redis) == [(COST_NANO, 0), (COST_NANO, 0)]
    assert await items(redis, KEYS.done("j1")) == [b"1"]
    assert await redis.xlen(KEYS.decisions) == 1


async def test_a_rerun_keeps_the_first_result_and_closes_its_own_reservation(script_redis: Redis) -> None:
    """A job whose worker died runs again under a new try: that try's reservation must not leak,
    and what it really spent is charged, but the first result stands."""
    redis = script_redis
    await queued_and_claimed(redis, "j1")
    await store(redis).finish(Finish(succeeded("j1", content="first"), QUEUE, hold=await hold(redis, "j1#1"),
                                     charge_nano=COST_NANO, job=job()))
    rerun = succeeded("j1", try_=2, content="second")
    second = await store(redis).finish(Finish(rerun, QUEUE, hold=await hold(redis, "j1#2"),
                                              charge_nano=COST_NANO, job=job()))

    assert second.written is False
    assert second.settlement is not None and second.settlement.state == "settled"
    assert await counters(redis) == [(2 * COST_NANO, 0), (2 * COST_NANO, 0)]
    assert await redis.zcard(f"{PREFIX}resv-leases") == 0
    assert parse_result(await redis.get(KEYS.result("j1"))).content == "first"


async def test_a_waiting_producer_wakes_with_the_result(script_redis: Redis) -> None:
    redis = script_redis
    await queued_and_claimed(redis, "j1")
    waiters = [asyncio.create_task(Client(redis, prefix=PREFIX).result("j1", timeout=10)) for _ in range(2)]
    result = succeeded("j1")
    await store(redis).finish(Finish(result, QUEUE, job=job()))
    assert await asyncio.wait_for(asyncio.gather(*waiters), 10) == [result, result]


# --- budget -----------------------------------------------------------------------------------


async def test_settles_the_hold_and_puts_the_settled_counters_in_the_result(script_redis: Redis) -> None:
    redis = script_redis
    await queued_and_claimed(redis, "j1")
    h = await hold(redis, "j1#1")
    assert await counters(redis) == [(0, WORST_NANO), (0, WORST_NANO)]

    done = await store(redis).finish(Finish(succeeded("j1"), QUEUE, hold=h, charge_nano=COST_NANO, job=job()))

    assert await counters(redis) == [(COST_NANO, 0), (COST_NANO, 0)]
    assert done.settlement is not None
    assert (done.settlement.state, done.settlement.charged_nano, done.settlement.replayed) == (
        "settled", COST_NANO, False)
    budget = [b.model_dump() for b in parse_result(await redis.get(KEYS.result("j1"))).budget]
    assert budget == [
        {"name": "all", "scope": "global", "window": h.lines[0].window, "spent_usd": COST_USD,
         "reserved_usd": "0.000000000", "limit_usd": "0.000010000"},
        {"name": "per-user", "scope": "user:u-1", "window": h.lines[1].window, "spent_usd": COST_USD,
         "reserved_usd": "0.000000000", "limit_usd": "0.000005000"},
    ]
    resv = f"{PREFIX}resv:j1#1"
    assert await cast(Awaitable[bytes | None], redis.hget(resv, "state")) == b"settled"
    assert 0 < await redis.ttl(resv) <= KEEP_S
    assert await redis.zscore(f"{PREFIX}resv-leases", "j1#1") is None
    assert all(t > 0 for t in await ttls(redis, f"{PREFIX}budget:*"))
    assert await keys_outside_prefix(redis) == []


async def test_a_charge_above_the_hold_is_charged_in_full(script_redis: Redis) -> None:
    redis = script_redis
    h = await hold(redis, "j1#1")
    await store(redis).finish(Finish(succeeded("j1"), QUEUE, hold=h, charge_nano=WORST_NANO + 1, job=job()))
    assert await counters(redis) == [(WORST_NANO + 1, 0), (WORST_NANO + 1, 0)]


async def test_without_a_hold_the_result_has_no_budget_lines(script_redis: Redis) -> None:
    redis = script_redis
    await store(redis).finish(Finish(succeeded("j1"), QUEUE, hold=Hold("j1#1"), job=job()))
    assert parse_result(await redis.get(KEYS.result("j1"))).budget == []
    assert [k async for k in redis.scan_iter(match=f"{PREFIX}resv*")] == []


# --- dead letters -----------------------------------------------------------------------------


async def test_a_failed_job_is_indexed_and_kept_as_long_as_its_result(script_redis: Redis) -> None:
    redis = script_redis
    await queued_and_claimed(redis, "j1")
    stale_ms = int((time.time() - TTL_S - 60) * 1000)  # its result expired a minute ago
    await redis.zadd(KEYS.failed, {"stale": stale_ms})
    j = job()
    before_ms = int(time.time() * 1000)

    await store(redis).finish(Finish(failed("j1"), QUEUE, job=j))

    after_ms = int(time.time() * 1000)
    scores = dict(await redis.zrange(KEYS.failed, 0, -1, withscores=True))
    assert list(scores) == [b"j1"]  # the stale entry was pruned on the way
    assert before_ms <= scores[b"j1"] <= after_ms
    assert orjson.loads(await redis.get(KEYS.failed_job("j1"))) == j.model_dump(mode="json")
    assert within(await redis.ttl(KEYS.failed_job("j1")), TTL_S)
    assert abs(await redis.ttl(KEYS.failed_job("j1")) - await redis.ttl(KEYS.result("j1"))) <= 1
    assert parse_result(await redis.get(KEYS.result("j1"))).status == "failed"
    assert await keys_outside_prefix(redis) == []


async def test_only_failures_are_dead_lettered_and_a_job_document_is_optional(script_redis: Redis) -> None:
    redis = script_redis
    await store(redis).finish(Finish(succeeded("ok"), QUEUE, job=job()))
    await store(redis).finish(Finish(failed("bare"), QUEUE))
    assert await redis.zrange(KEYS.failed, 0, -1) == [b"bare"]
    assert await redis.exists(KEYS.failed_job("ok"), KEYS.failed_job("bare")) == 0


# --- decisions and rollups ----------------------------------------------------------------------


async def test_the_decision_names_the_routing_and_hashes_the_prompt(script_redis: Redis) -> None:
    redis = script_redis
    messages = [{"role": "user", "content": PROMPT}]
    await store(redis).finish(Finish(succeeded("j1", served=FALLBACK), QUEUE, job=job(), messages=messages))

    ((_, fields),) = await redis.xrange(KEYS.decisions)
    got = {k.decode(): v.decode() for k, v in fields.items()}
    assert {k: got[k] for k in ("job_id", "status", "rule", "model", "model_served", "cost_usd")} == {
        "job_id": "j1", "status": "succeeded", "rule": "chat-rule", "model": MODEL, "model_served": FALLBACK,
        "cost_usd": COST_USD}
    digest = hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert got["prompt_sha256"] == digest
    assert PROMPT not in str(got)


async def test_the_decision_stream_is_bounded(script_redis: Redis) -> None:
    """MAXLEN ~ trims whole stream nodes (at most 100 entries each by default), never below the cap."""
    redis, cap, jobs = script_redis, 10, 150
    s = store(redis, decisions_maxlen=cap, rollup_ttl_s=0)
    for i in range(jobs):
        await s.finish(Finish(succeeded(f"j{i}"), QUEUE))
    length = await redis.xlen(KEYS.decisions)
    assert cap <= length < cap + 100 < jobs
    ((_, newest),) = await redis.xrevrange(KEYS.decisions, count=1)
    assert newest[b"job_id"] == f"j{jobs - 1}".encode()


async def test_rollups_count_each_job_once_with_their_ttls(script_redis: Redis) -> None:
    redis = script_redis
    exp = ExperimentInfo(name="exp1", variant="b", unit_hash="ab" * 32, unit="context.user_id")
    await store(redis).finish(Finish(succeeded("j1", served=FALLBACK, experiment=exp), QUEUE, job=job()))
    await store(redis).finish(Finish(succeeded("j2", served=FALLBACK, experiment=exp), QUEUE, job=job()))

    dims = f"chat-rule|{FALLBACK}|exp1:b|chat|acme|"
    got = await rollup(redis)
    assert {k: v for k, v in got.items() if not k.startswith(dims + "h:")} == {
        dims + "n": 2, dims + "s:succeeded": 2, dims + "fb": 2, dims + "cost": 2 * COST_NANO,
        dims + "pt": 24, dims + "ct": 10}
    assert sum(v for k, v in got.items() if k.startswith(dims + "h:")) == 2  # one latency bucket each
    assert all(within(t, ROLLUP_TTL_S) for t in await ttls(redis, f"{PREFIX}rollup:*"))
    assert len(await ttls(redis, f"{PREFIX}rollup:dim:*")) == 5
    units = KEYS.experiment_units("exp1", "b")
    assert await redis.pfcount(units) == 1  # the same unit twice
    assert within(await redis.ttl(units), ROLLUP_TTL_S)
    assert within(await redis.ttl(KEYS.feedback_ref("j1")), FEEDBACK_TTL_S)
    assert await keys_outside_prefix(redis) == []


async def test_a_dimension_past_its_cap_folds_into_other(script_redis: Redis) -> None:
    redis = script_redis
    tenants = [f"t{i}" for i in range(1000)]
    await cast(Awaitable[int], redis.sadd(KEYS.rollup_dim("tenant"), *tenants))  # the tenant cap is full
    await store(redis).finish(Finish(succeeded("j1"), QUEUE, job=job(tenant="newcomer")))
    got = await rollup(redis)
    assert got[f"chat-rule|{MODEL}|-|chat|other|n"] == 1
    assert await cast(Awaitable[int], redis.sismember(KEYS.rollup_dim("tenant"), "newcomer")) == 0


async def test_rollups_off_writes_no_rollup_keys_but_keeps_feedback_possible(script_redis: Redis) -> None:
    redis = script_redis
    await store(redis, rollup_ttl_s=0).finish(Finish(succeeded("j1"), QUEUE, job=job()))
    assert [k async for k in redis.scan_iter(match=f"{PREFIX}rollup*")] == []
    assert await redis.ttl(KEYS.feedback_ref("j1")) > 0  # feedback is still accepted, for its own TTL
