"""BudgetLedger on fakeredis and on a real redis-server: semantics, then concurrency.

The real server is private to this module (free loopback port, no persistence) and killed after.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import fakeredis
import pytest
from redis.asyncio import Redis

from tests.support.procs import RedisServer
from worker.budget import (
    BudgetAlert,
    BudgetLine,
    applicable,
    parse_budgets,
    window_end,
)
from worker.budget.ledger import BudgetLedger, WindowEnded

TIMEZONE = os.environ.get("ROUTEQ_TEST_TIMEZONE", "UTC")  # .ci/run also runs these in Europe/Paris


def now() -> datetime:
    """Budget windows are computed from the real (or libfaketime's) clock: Redis expires keys by
    that same clock, so a fixed date here would pass only until its window's expiry passed."""
    return datetime.now(UTC)


@pytest.fixture()
async def redis(script_redis: Redis) -> Redis:
    """Each semantic test runs on fakeredis and on a real redis-server: their Lua must agree."""
    return script_redis


@pytest.fixture()
async def real_redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=redis_server.port, max_connections=64)
    await client.flushall()
    yield client
    await client.aclose()


def lines_for(
    *limits: int, window: str = "day", prefix: str = "routeq:", user: str = "u-1"
) -> tuple[BudgetLine, ...]:
    """One line per limit (nano-USD): a global budget then per-user budgets."""
    raw: list[dict[str, Any]] = [
        {
            "name": f"b{i}",
            "scope": "global" if i == 0 else "user",
            "limit_usd": f"{limit / 10**9:.9f}",
            "window": window,
        }
        for i, limit in enumerate(limits)
    ]
    return applicable(parse_budgets(raw), {"user_id": user}, now(), TIMEZONE, prefix=prefix)


async def counters(redis: Redis, lines: tuple[BudgetLine, ...]) -> list[tuple[int, int]]:
    out = []
    for line in lines:
        spent, reserved = await cast(Awaitable[list[Any]], redis.hmget(line.key, ["spent", "reserved"]))
        out.append((int(spent or 0), int(reserved or 0)))
    return out


# --- reserve ---------------------------------------------------------------------------------


async def test_reserve_holds_on_every_line_and_records_limit(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000, 500)
    held = await ledger.reserve("j1", lines, 300)
    assert held.ok and held.state == "open" and not held.replayed
    assert [(s.spent_nano, s.reserved_nano, s.limit_nano) for s in held.lines] == [
        (0, 300, 1000),
        (0, 300, 500),
    ]
    assert await counters(redis, lines) == [(0, 300), (0, 300)]
    assert await redis.zscore(ledger.leases_key, "j1") is not None
    assert held.lease_deadline is not None and held.lease_deadline > time.time() + 500
    ttl = await redis.ttl(lines[0].key)
    assert lines[0].expire_at is not None and 0 < ttl <= lines[0].expire_at - time.time() + 1


async def test_reserve_is_all_or_nothing_and_names_the_first_short_budget(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000, 500)
    assert (await ledger.reserve("j1", lines, 400)).ok
    denied = await ledger.reserve("j2", lines, 200)
    assert not denied.ok and denied.state == "denied"
    assert denied.denied is not None
    assert (denied.denied.name, denied.denied.limit_nano, denied.denied.remaining_nano) == ("b1", 500, 100)
    # Nothing was taken from the global budget, which had room.
    assert await counters(redis, lines) == [(0, 400), (0, 400)]
    assert not await redis.exists(ledger.resv_key("j2"))
    # Exactly filling the cap is allowed.
    assert (await ledger.reserve("j3", lines, 100)).ok


async def test_reserving_twice_returns_the_first_reservation_unchanged(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000)
    first = await ledger.reserve("j1", lines, 300)
    again = await ledger.reserve("j1", lines, 600)
    assert again.replayed and again.ok and again.amount_nano == 300
    assert again.lease_deadline == first.lease_deadline
    assert await counters(redis, lines) == [(0, 300)]


async def test_zero_amount_is_never_denied_but_positive_is_when_full(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(100)
    assert (await ledger.reserve("j1", lines, 100)).ok
    assert (await ledger.reserve("free", lines, 0)).ok
    assert not (await ledger.reserve("j2", lines, 1)).ok


async def test_no_lines_stores_nothing(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    held = await ledger.reserve("j1", (), 300)
    assert held.ok and held.state == "none"
    assert (await ledger.settle("j1", 10)).state == "none"
    assert await redis.dbsize() == 0


@pytest.mark.parametrize("amount", [-1, 2**53, True, 1.5])
async def test_amounts_must_be_exact_nano_ints(redis: Redis, amount: Any) -> None:
    with pytest.raises(ValueError):
        await BudgetLedger(redis).reserve("j1", lines_for(1000), amount)


# --- settle / release --------------------------------------------------------------------------


async def test_settle_replaces_reservation_by_actual_once(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000, 500)
    await ledger.reserve("j1", lines, 300)
    done = await ledger.settle("j1", 120)
    assert (done.state, done.replayed, done.reserved_nano, done.charged_nano, done.overrun_nano) == (
        "settled",
        False,
        300,
        120,
        0,
    )
    assert await counters(redis, lines) == [(120, 0), (120, 0)]
    assert await redis.zcard(ledger.leases_key) == 0
    assert 0 < await redis.ttl(ledger.resv_key("j1")) <= ledger.keep_s
    again = await ledger.settle("j1", 999)
    assert again.replayed and again.charged_nano == 120
    assert await counters(redis, lines) == [(120, 0), (120, 0)]
    assert (await ledger.release("j1")).replayed
    # A rerun of the job gets the settled reservation back, not a new hold.
    rerun = await ledger.reserve("j1", lines, 300)
    assert rerun.replayed and rerun.state == "settled" and not rerun.ok
    assert await counters(redis, lines) == [(120, 0), (120, 0)]


async def test_actual_above_reservation_is_charged_in_full(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000)
    await ledger.reserve("j1", lines, 300)
    done = await ledger.settle("j1", 450)
    assert done.overrun_nano == 150
    assert await counters(redis, lines) == [(450, 0)]


async def test_release_frees_everything(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000)
    await ledger.reserve("j1", lines, 700)
    assert not (await ledger.reserve("j2", lines, 700)).ok
    released = await ledger.release("j1")
    assert released.charged_nano == 0
    assert await counters(redis, lines) == [(0, 0)]
    assert (await ledger.reserve("j2", lines, 700)).ok


async def test_a_window_that_already_ended_is_refused_and_nothing_is_held(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    (line,) = lines_for(1000)
    ended = replace(line, expire_at=int(time.time()) - 5)
    with pytest.raises(WindowEnded, match="already past on the Redis clock"):
        await ledger.reserve("j1", (ended,), 10)
    assert not await redis.exists(line.key, ledger.resv_key("j1"))
    assert (await ledger.reserve("j1", (line,), 10)).ok  # the current window still works


async def test_settle_keeps_the_window_chosen_at_reserve_time(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    budgets = parse_budgets([{"name": "d", "scope": "global", "limit_usd": "1", "window": "day"}])
    midnight = window_end("day", now(), TIMEZONE)
    assert midnight is not None
    before = applicable(budgets, {}, midnight - timedelta(minutes=1), TIMEZONE)
    after = applicable(budgets, {}, midnight + timedelta(minutes=1), TIMEZONE)
    await ledger.reserve("j1", before, 100)
    settled = await ledger.settle("j1", 80)  # settled after midnight: charges the reserving day
    assert [s.window for s in settled.lines] == [before[0].window] != [after[0].window]
    assert await counters(redis, before) == [(80, 0)]
    assert not await redis.exists(after[0].key)


async def test_decoded_clients_work_too() -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    ledger = BudgetLedger(redis)
    lines = lines_for(1000)
    assert (await ledger.reserve("j1", lines, 10)).ok
    assert (await ledger.settle("j1", 10)).lines[0].spent_nano == 10
    assert [s.key for s in await ledger.status_all()] == [lines[0].key]


# --- leases ------------------------------------------------------------------------------------


async def test_expired_lease_is_reclaimed_at_the_reserved_amount(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000)
    await ledger.reserve("dead", lines, 300, lease_s=0.2)
    await ledger.reserve("alive", lines, 100, lease_s=60)
    assert await ledger.reclaim_expired() == []
    await asyncio.sleep(0.3)
    assert await ledger.reclaim_expired() == ["dead"]
    assert await counters(redis, lines) == [(300, 100)]
    assert await cast(Awaitable[Any], redis.hget(ledger.resv_key("dead"), "state")) == b"reclaimed"
    assert await redis.zrange(ledger.leases_key, 0, -1) == [b"alive"]
    assert await ledger.reclaim_expired() == []
    # The zombie worker reports a cheaper actual: nothing changes.
    late = await ledger.settle("dead", 120)
    assert late.state == "reclaimed" and late.replayed and late.charged_nano == 300
    assert await counters(redis, lines) == [(300, 100)]


async def test_late_overrun_after_reclaim_adds_only_the_excess_once(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000)
    await ledger.reserve("dead", lines, 300, lease_s=0.05)
    assert await ledger.reclaim_expired(now=time.time() + 1) == ["dead"]
    late = await ledger.settle("dead", 420)
    assert late.charged_nano == 420 and late.overrun_nano == 120
    assert (await ledger.settle("dead", 900)).replayed
    assert await counters(redis, lines) == [(420, 0)]


async def test_replace_gives_back_the_open_reservation_and_holds_the_new_amount(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000, 500)
    await ledger.reserve("j1", lines, 400)
    assert (await ledger.reserve("j1", lines, 100)).replayed  # plain reserve never holds twice
    swapped = await ledger.reserve("j1", lines[:1], 250, replace=True)
    assert swapped.ok and not swapped.replayed and swapped.amount_nano == 250
    assert await counters(redis, lines) == [(0, 250), (0, 0)]
    denied = await ledger.reserve("j1", lines[:1], 2000, replace=True)
    assert not denied.ok and denied.denied is not None  # too big: nothing is held any more
    assert await counters(redis, lines) == [(0, 0), (0, 0)]
    assert await redis.zcard(ledger.leases_key) == 0


async def test_add_grows_an_open_reservation_only_while_every_counter_has_room(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000, 500)
    await ledger.reserve("j1", lines, 200)
    grown = await ledger.add("j1", lines, 200)
    assert grown.ok and grown.added and grown.amount_nano == 400
    assert await counters(redis, lines) == [(0, 400), (0, 400)]
    short = await ledger.add("j1", lines, 200)  # the 500 line cannot take 600
    assert not short.ok and short.denied is not None and short.denied.name == lines[1].name
    assert await counters(redis, lines) == [(0, 400), (0, 400)]
    settled = await ledger.settle("j1", 350)
    assert settled.reserved_nano == 400 and await counters(redis, lines) == [(350, 0), (350, 0)]
    assert (await ledger.add("j1", lines, 10)).state == "none"  # closed: nothing to grow
    assert (await ledger.add("never", lines, 10)).state == "none"


async def test_reclaim_respects_its_batch_limit(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(10_000)
    for i in range(5):
        await ledger.reserve(f"j{i}", lines, 10, lease_s=0.01)
    later = time.time() + 1
    first = await ledger.reclaim_expired(now=later, limit=3)
    rest = await ledger.reclaim_expired(now=later, limit=3)
    assert len(first) == 3 and len(rest) == 2 and not set(first) & set(rest)
    assert await counters(redis, lines) == [(50, 0)]


# --- state / status / reset --------------------------------------------------------------------


async def test_state_reads_counters_with_the_configured_limits(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000, 500)
    await ledger.reserve("j1", lines, 200)
    await ledger.settle("j1", 50)
    await ledger.reserve("j2", lines, 100)
    states = await ledger.state(lines)
    assert [(s.name, s.spent_nano, s.reserved_nano, s.remaining_nano) for s in states] == [
        ("b0", 50, 100, 850),
        ("b1", 50, 100, 350),
    ]
    unseen = await ledger.state(lines_for(7, 7, user="nobody"))
    assert [(s.spent_nano, s.reserved_nano, s.limit_nano) for s in unseen] == [(50, 100, 7), (0, 0, 7)]


async def test_status_all_lists_counters_only_and_reset_zeroes_spent(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    u1, u2 = lines_for(1000, 500, user="u-1"), lines_for(1000, 500, user="u-2")
    for job, lines in (("a", u1), ("b", u2)):
        await ledger.reserve(job, lines, 300)
        await ledger.settle(job, 300)  # also fires alerts into the stream
    await ledger.reserve("c", u1, 100)
    await redis.set("routeq:budget:not-a-hash", "x")
    status = await ledger.status_all()
    assert [(s.scope, s.spent_nano, s.reserved_nano) for s in status] == [
        ("global", 600, 100),
        ("user:u-1", 300, 100),
        ("user:u-2", 300, 0),
    ]
    assert await ledger.reset("user:u-1") == 1
    assert await ledger.reset("b0") == 1
    assert await ledger.reset(u2[1].key) == 1
    assert await ledger.reset("nothing-like-this") == 0
    status = await ledger.status_all()
    assert [(s.spent_nano, s.reserved_nano) for s in status] == [(0, 100), (0, 100), (0, 0)]
    # In-flight reservation still settles cleanly after a reset.
    await ledger.settle("c", 40)
    assert await counters(redis, u1) == [(40, 0), (40, 0)]


# --- alerts ------------------------------------------------------------------------------------


async def test_threshold_alerts_fire_once_per_window_on_spent_only(redis: Redis) -> None:
    seen: list[BudgetAlert] = []

    async def hook(alerts: Any) -> None:
        seen.extend(alerts)

    ledger = BudgetLedger(redis, on_alerts=hook)
    lines = lines_for(1000)
    await ledger.reserve("big", lines, 900)
    assert await redis.xlen(ledger.alerts_key) == 0  # reservations never alert
    first = await ledger.settle("big", 600)
    assert [a.threshold for a in first.alerts] == [50]
    await ledger.reserve("j2", lines, 300)
    second = await ledger.settle("j2", 300)
    assert [a.threshold for a in second.alerts] == [80]
    await ledger.reserve("j3", lines, 100)
    assert [a.threshold for a in (await ledger.settle("j3", 100)).alerts] == [100]
    assert [a.threshold for a in seen] == [50, 80, 100]
    entries = await redis.xrange(ledger.alerts_key)
    assert [int(fields[b"threshold"]) for _, fields in entries] == [50, 80, 100]
    _, last = entries[-1]
    assert (last[b"budget"], last[b"scope"], last[b"window"]) == (b"b0", b"global", lines[0].window.encode())
    assert (int(last[b"spent_nano"]), int(last[b"limit_nano"])) == (1000, 1000)
    # Reset forgets the fired thresholds along with the money.
    await ledger.reset("b0")
    await ledger.reserve("after-reset", lines, 500)
    assert [a.threshold for a in (await ledger.settle("after-reset", 500)).alerts] == [50]
    # The next window alerts again, independently.
    next_day = applicable(
        parse_budgets([{"name": "b0", "scope": "global", "limit_usd": "0.000001", "window": "day"}]),
        {},
        now() + timedelta(days=1),
        TIMEZONE,
    )
    await ledger.reserve("tomorrow", next_day, 1000)
    assert [a.threshold for a in (await ledger.settle("tomorrow", 1000)).alerts] == [50, 80, 100]


async def test_reclaim_crossings_alert_too(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000)
    await ledger.reserve("dead", lines, 800, lease_s=0.01)
    await ledger.reclaim_expired(now=time.time() + 1)
    assert [int(f[b"threshold"]) for _, f in await redis.xrange(ledger.alerts_key)] == [50, 80]


# --- real Redis under concurrency ---------------------------------------------------------------


async def test_500_concurrent_jobs_never_overshoot_the_cap(real_redis: Redis) -> None:
    ledger = BudgetLedger(real_redis)
    cap_global, cap_user = 50_000, 20_000
    rng = random.Random(7)
    jobs = [(f"job-{i}", f"u-{i % 3}", rng.randint(1, 2_000), rng.random()) for i in range(500)]
    charged: dict[str, int] = {}

    async def one(job_id: str, user: str, amount: int, fraction: float) -> None:
        lines = lines_for(cap_global, cap_user, user=user)
        held = await ledger.reserve(job_id, lines, amount)
        if not held.ok:
            return
        await asyncio.sleep(rng.random() * 0.01)
        actual = int(amount * fraction)
        await ledger.settle(job_id, actual)
        charged[job_id] = actual

    await asyncio.gather(*(one(*job) for job in jobs))
    status = {s.scope: s for s in await ledger.status_all()}
    assert 0 < len(charged) < 500  # the cap really bit
    assert status["global"].spent_nano == sum(charged.values()) <= cap_global
    for user in ("u-0", "u-1", "u-2"):
        user_jobs = [j for j, u, _, _ in jobs if u == user and j in charged]
        assert status[f"user:{user}"].spent_nano == sum(charged[j] for j in user_jobs) <= cap_user
    assert all(s.reserved_nano == 0 for s in status.values())
    assert await real_redis.zcard(ledger.leases_key) == 0


async def test_concurrent_crossings_alert_exactly_once_per_threshold(real_redis: Redis) -> None:
    ledger = BudgetLedger(real_redis)
    lines = lines_for(1_000)

    async def one(i: int) -> tuple[int, ...]:
        if not (await ledger.reserve(f"j{i}", lines, 10)).ok:
            return ()
        return tuple(a.threshold for a in (await ledger.settle(f"j{i}", 10)).alerts)

    fired = [t for ts in await asyncio.gather(*(one(i) for i in range(300))) for t in ts]
    assert sorted(fired) == [50, 80, 100]
    entries = await real_redis.xrange(ledger.alerts_key)
    assert sorted(int(f[b"threshold"]) for _, f in entries) == [50, 80, 100]
    assert (await ledger.state(lines))[0].spent_nano == 1_000


async def test_concurrent_reclaimers_and_zombie_settles_charge_once(real_redis: Redis) -> None:
    ledger = BudgetLedger(real_redis)
    lines = lines_for(1_000_000)
    for i in range(50):
        await ledger.reserve(f"j{i}", lines, 100, lease_s=0.01)
    await asyncio.sleep(0.05)
    reclaims, settles = await asyncio.gather(
        asyncio.gather(*(ledger.reclaim_expired(limit=20) for _ in range(10))),
        asyncio.gather(*(ledger.settle(f"j{i}", 40) for i in range(50))),
    )
    reclaimed = [job for batch in reclaims for job in batch]
    assert len(reclaimed) == len(set(reclaimed))
    settled = [s for s in settles if s.state == "settled"]
    assert len(settled) == 50 - len(reclaimed)
    assert all(s.replayed for s in settles if s.state == "reclaimed")
    assert sorted(s.job_id for s in settles if s.state == "reclaimed") == sorted(reclaimed)
    assert await counters(real_redis, lines) == [(len(settled) * 40 + len(reclaimed) * 100, 0)]


async def test_counters_are_listed_from_their_index_which_drops_long_expired_ones(redis: Redis) -> None:
    ledger = BudgetLedger(redis)
    lines = lines_for(1000, 500, user="u-9")
    await ledger.reserve("idx", lines, 10)
    scores = dict(await redis.zrange(ledger.lines_key, 0, -1, withscores=True))  # type: ignore[misc]
    assert {k.decode() for k in scores} == {line.key for line in lines}
    for line in lines:  # each member is scored by its counter's expiry, as the counter expires
        assert scores[line.key.encode()] == (float("inf") if line.expire_at is None else line.expire_at)
    # A counter that expired long ago leaves the index at the next listing; a live one stays.
    await redis.zadd(ledger.lines_key, {"routeq:budget:old:global:2020-01-01": 1_600_000_000})
    assert sorted(s.key for s in await ledger.status_all()) == sorted(line.key for line in lines)
    assert await redis.zscore(ledger.lines_key, "routeq:budget:old:global:2020-01-01") is None
