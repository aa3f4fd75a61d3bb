"""The dashboard's JSON: per-minute counts read incrementally (each decision counted once), hourly
series from the rollups with the long tail summed as "other", and Redis trouble as a 503."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from producer_client.connection import connect
from producer_client.keys import Keys
from worker.dashboard import data as dashboard_data
from worker.dashboard import minutes
from worker.dashboard.app import make_app
from worker.dashboard.data import DashboardData
from worker.rollup_format import field, hour_of

KEYS = Keys()


async def _decision(redis: Redis, at_ms: int, status: str = "succeeded") -> None:
    entry = {"status": status, "queue": "interactive", "total_ms": "5"}
    await redis.xadd(KEYS.decisions, entry, id=f"{at_ms}-*")


def _minute_sums(doc: dict[str, Any]) -> dict[str, int]:
    return {s: sum(v) for s, v in doc["minutes"]["series"].items() if sum(v)}


async def test_each_decision_is_counted_once_across_refreshes(script_redis: Redis) -> None:
    redis = script_redis
    now_ms = int(time.time() * 1000)
    await _decision(redis, now_ms - 2 * 3_600_000)  # older than the chart
    for n in range(5):
        await _decision(redis, now_ms - 50_000 + n, "succeeded" if n else "failed")
    data = DashboardData(redis, KEYS)
    first = await data.snapshot()
    assert _minute_sums(first) == {"succeeded": 4, "failed": 1} and first["minutes"]["estimated"] == []
    assert len(first["minutes"]["t"]) == 60
    await _decision(redis, int(time.time() * 1000), "rejected")
    assert _minute_sums(await data.snapshot()) == {"succeeded": 4, "failed": 1, "rejected": 1}
    assert _minute_sums(await data.snapshot()) == {"succeeded": 4, "failed": 1, "rejected": 1}


async def test_past_the_read_cap_the_minutes_not_read_are_estimated(redis: Redis, monkeypatch: Any) -> None:
    monkeypatch.setattr(minutes, "CAP", 10)
    monkeypatch.setattr(minutes, "TRIPS", 2)
    now_ms = int(time.time() * 1000)
    for n in reversed(range(120)):  # one every 15 s over the last half hour
        await _decision(redis, now_ms - 15_000 * n - 1)
    doc = await DashboardData(redis, KEYS).snapshot()
    assert doc["minutes"]["estimated"]  # only 20 of 120 were read
    assert sum(doc["minutes"]["series"]["succeeded"]) == pytest.approx(120, rel=0.1)


async def test_hourly_series_keep_the_top_models_and_sum_the_rest_as_other(
    redis: Redis, monkeypatch: Any
) -> None:
    monkeypatch.setattr(dashboard_data, "TOP", 2)
    hour = hour_of(time.time())
    costs = {"m/a": 500, "m/b": 300, "m/c": 20, "m/d": 10}
    for model, nano in costs.items():
        dims = ("default", model, "-", "chat", "-")
        await redis.hset(KEYS.rollup(hour), mapping={field(dims, "n"): 1, field(dims, "cost"): nano,
                                                     field(dims, "s:succeeded"): 1, field(dims, "h:3"): 1})
    doc = await DashboardData(redis, KEYS).snapshot()
    spend = {k: round(sum(v) * 1e9) for k, v in doc["hours"]["spend_usd_by_model"].items()}
    assert spend == {"m/a": 500, "m/b": 300, "other": 30}
    assert {k: sum(v) for k, v in doc["hours"]["jobs_by_rule"].items()} == {"default": 4}
    assert doc["totals"]["jobs"] == 4 and doc["totals"]["spend_usd"] == "0.000000830"
    # bucket 3's upper bound, in the one hour that had jobs
    assert [p for p in doc["hours"]["latency_ms"]["p95"] if p is not None] == [100]


async def test_redis_trouble_is_a_503_the_page_can_show() -> None:
    unreachable = connect("redis://127.0.0.1:1/0", retries=0)
    async with TestClient(TestServer(make_app(DashboardData(unreachable, KEYS)))) as http:
        resp = await http.get("/api/data")
        assert resp.status == 503
        assert "cannot read Redis" in (await resp.json())["error"]
        assert (await http.get("/")).status == 200
    await unreachable.aclose()


async def test_with_no_prefix_asked_an_empty_fleet_shows_the_last_demo(redis: Redis) -> None:
    from worker.cli.dashboard_cmd import choose_prefix
    from worker.demo.housekeeping import DEMO_PREFIX

    assert await choose_prefix(redis, None) == ("routeq:", None)  # nothing anywhere: the default
    await redis.xadd(Keys(DEMO_PREFIX).decisions, {"status": "succeeded"})
    prefix, note = await choose_prefix(redis, None)
    assert prefix == DEMO_PREFIX and note is not None and "--prefix" in note
    assert await choose_prefix(redis, "staging:") == ("staging:", None)  # an explicit ask wins
    await redis.zadd(KEYS.workers, {"w1": 1})  # a fleet under the default prefix: it wins
    assert await choose_prefix(redis, None) == ("routeq:", None)
