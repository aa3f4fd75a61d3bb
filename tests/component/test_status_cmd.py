"""``routeq status``: what it reads from Redis (queues, flow, workers, health, budgets) and shows."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from producer_client.keys import Keys
from producer_client.money import usd_to_nano
from tests.support.inproc import inproc_stack
from tests.support.waiting import eventually
from worker.budget.ledger import BudgetLedger
from worker.budget.lines import BudgetLine
from worker.cli.status_cmd import render_status
from worker.health import BreakerSettings, ModelHealth
from worker.heartbeat import Beat, Heartbeat
from worker.observe.fleet import fleet_status
from worker.observe.flow import DecisionCounter, last_minute
from worker.observe.queues import read_queues
from worker.observe.workers import fresh, on_this_host, read_workers
from worker.openrouter.models import Attempt

KEYS = Keys()


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _decision(redis: Redis, at_ms: int, seq: int, **fields: Any) -> None:
    doc = {"status": "succeeded", "total_ms": "100", "queue_ms": "0", **fields}
    await redis.xadd(KEYS.decisions, {k: str(v) for k, v in doc.items()}, id=f"{at_ms}-{seq}")


async def test_a_finished_run_shows_its_worker_and_its_jobs_out() -> None:
    async with inproc_stack(heartbeat_s=0.1) as stack:
        redis = stack.client.redis
        ids = [await stack.client.submit(prompt=f"hello {i}", context={"user_tier": "pro"}) for i in range(7)]
        await stack.client.wait_all(ids, timeout=30)

        async def settled() -> Any:
            s = await fleet_status(redis, KEYS)
            return s if s.workers and s.workers[0].doc.get("jobs_done") == 7 else None

        status = await eventually(settled, timeout=10, what="the heartbeat to report 7 jobs done")
        worker = status.workers[0]
        assert worker.state == "live"
        assert worker.doc["slots"] == 50 and set(worker.queues) == {"interactive", "batch"}
        # Every finished job counts once as out, whichever queue its decision entry names.
        assert sum(status.flow.out_per_min.values()) == 7
        assert status.flow.by_status == {"succeeded": 7}
        assert not status.flow.estimated
        assert {q.name: q.depth for q in status.queues} == {"interactive": 0, "batch": 0}
        text = "\n".join(render_status(status))
        assert worker.name in text and "1 live, 0 lost" in text


async def test_queue_depth_counts_waiting_and_running_and_ages_the_oldest_waiting(redis: Redis) -> None:
    now = _now_ms()
    await redis.zadd(KEYS.queue("interactive"), {"a": now - 5_000, "b": now - 1_000, "c": now - 2_000,
                                                  "running-1": now + 60_000, "running-2": now + 90_000})
    await redis.zadd(KEYS.queue("batch"), {"later": now + 10_000})
    states = {q.name: q for q in await read_queues(redis, KEYS, ["interactive", "batch"], now)}
    i, b = states["interactive"], states["batch"]
    assert (i.depth, i.ready, i.running) == (5, 3, 2)
    assert i.oldest_ready_age_s == pytest.approx(5.0)
    assert (b.depth, b.ready, b.oldest_ready_age_s) == (1, 0, None)


async def test_flow_counts_the_last_minute_per_queue_with_arrivals(script_redis: Redis) -> None:
    redis = script_redis
    now = _now_ms()
    await _decision(redis, now - 90_000, 0, queue="interactive")  # before the window: neither
    for n in range(4):
        await _decision(redis, now - 10_000 + n, 0, queue="interactive")
    await _decision(redis, now - 6_000, 0, queue="batch")
    # Finished in the window, but waited 70 s: out, not in.
    await _decision(redis, now - 5_000, 0, queue="batch", queue_ms=70_000, status="failed")
    flow = await last_minute(DecisionCounter(redis, KEYS), {"batch": 3}, now)
    assert flow.out_per_min == {"interactive": 4, "batch": 2}
    assert flow.in_per_min == {"interactive": 4, "batch": 1 + 3}
    assert flow.by_status == {"succeeded": 5, "failed": 1}
    assert not flow.estimated


async def test_flow_past_the_cap_is_extrapolated_from_the_newest_entries(script_redis: Redis) -> None:
    redis = script_redis
    now = _now_ms()
    for n in reversed(range(120)):  # one every 0.5 s over the last minute
        await _decision(redis, now - 500 * n - 1, 0, queue="interactive")
    flow = await last_minute(DecisionCounter(redis, KEYS), {}, now, cap=20)
    assert flow.estimated
    assert flow.out_per_min["interactive"] == pytest.approx(120, rel=0.1)


async def test_a_worker_that_stops_beating_is_shown_lost_and_a_stopped_one_disappears(redis: Redis) -> None:
    beats = [Heartbeat(redis, KEYS, Beat(f"w{i}", ("interactive",), 4, 0.05, "test"), dict) for i in range(3)]
    for hb in beats:
        await hb.beat_once()
    states = {w.name: w.state for w in await read_workers(redis, KEYS)}
    assert states == {"w0": "live", "w1": "live", "w2": "live"}
    await beats[2].stop()  # graceful: gone at once
    await beats[0].beat_once()

    async def w1_lost() -> Any:
        workers = {w.name: w.state for w in await read_workers(redis, KEYS)}
        return workers if workers.get("w1") == "lost" else None

    workers = await eventually(w1_lost, timeout=5, what="w1's heartbeat to expire")
    assert "w2" not in workers
    status = await fleet_status(redis, KEYS)
    assert "w1" in "\n".join(line for line in render_status(status) if "LOST" in line)


async def test_the_liveness_check_wants_this_hosts_worker_with_a_recent_beat(redis: Redis) -> None:
    here = Heartbeat(redis, KEYS, Beat("here", ("interactive",), 4, 2.0, "test", host="this-box"), dict)
    there = Heartbeat(redis, KEYS, Beat("there", ("interactive",), 4, 2.0, "test", host="other-box"), dict)
    await there.beat_once()
    assert on_this_host(await read_workers(redis, KEYS), "this-box") == []
    await here.beat_once()
    [mine] = on_this_host(await read_workers(redis, KEYS), "this-box")
    assert mine.name == "here" and fresh(mine)
    assert not fresh(mine, now_ms=mine.last_beat_ms + 6_001)


async def test_circuits_account_blocks_budgets_and_active_rules_are_shown(redis: Redis) -> None:
    health = ModelHealth(redis, settings=BreakerSettings(failure_threshold=2))
    down = Attempt("openai/gpt-4o", (), 503, "server_error", "upstream down", 12)
    for _ in range(2):
        await health.record(down)
    await health.record(Attempt("openai/gpt-4o", (), 402, "insufficient_credits", "no credits", 5))
    ledger = BudgetLedger(redis)
    line = BudgetLine("daily", "global", "2099-01-01", f"{KEYS.prefix}budget:daily:global:2099-01-01",
                      usd_to_nano("5"))
    await ledger.reserve("job-1", [line], usd_to_nano("0.25"))
    await ledger.settle("job-1", usd_to_nano("0.2"))
    await redis.set(KEYS.rules_active, 3)
    await redis.hset(KEYS.rules_version(3), mapping={"hash": "sha256:abc", "message": "cheaper chat",
                                                     "created_ms": _now_ms(), "by": "ops"})
    status = await fleet_status(redis, KEYS)
    doc = orjson.loads(orjson.dumps(status.as_dict()))
    assert [(c["model"], c["state"]) for c in doc["circuits"]] == [("openai/gpt-4o", "open")]
    assert [b["error_type"] for b in doc["account_blocks"]] == ["insufficient_credits"]
    assert [(b["name"], b["spent_usd"], b["limit_usd"]) for b in doc["budgets"]] == [
        ("daily", "0.200000000", "5.000000000")]
    assert doc["rules_active"]["number"] == 3 and doc["rules_active"]["message"] == "cheaper chat"
    text = "\n".join(render_status(status))
    needles = ("openai/gpt-4o", "open", "insufficient_credits", "0.200000000", "version 3", "cheaper chat")
    for needle in needles:
        assert needle in text
