"""Budgets inside the pipeline, on fakeredis: rules see real counters; results show the lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from producer_client.money import usd_to_nano
from tests.support.inproc import inproc_stack
from tests.support.rules import rules_with_budgets

PRO = {"user_tier": "pro", "task_type": "chat", "user_id": "u-1", "max_latency_ms": 30000}


async def test_low_budget_rule_routes_on_the_real_counter(tmp_path: Path) -> None:
    # $1.50 a day per user; u-1 has spent $0.60 already -> $0.90 left < $1.00: low-budget applies.
    rules = rules_with_budgets(tmp_path, [
        {"name": "per-user", "scope": "user", "limit_usd": "1.50", "window": "day"},
    ])
    async with inproc_stack(rules=rules) as stack:
        rich = await stack.client.result(await stack.client.submit(
            prompt="hello", context={**PRO, "user_id": "u-rich", "budget_remaining": 0.10}), timeout=10)
        # A producer-supplied budget_remaining is overridden by the configured budget's counter.
        assert rich.routing is not None and rich.routing.rule == "default"
        keys = [k async for k in stack.client.redis.scan_iter(match="routeq:budget:per-user:user:u-rich:*")]
        assert len(keys) == 1
        day_key = keys[0].decode().replace("u-rich", "u-1")
        await stack.client.redis.hset(day_key, mapping={"spent": usd_to_nano("0.60"), "reserved": 0,
                                                        "limit": usd_to_nano("1.50")})
        poor = await stack.client.result(await stack.client.submit(prompt="hello", context=PRO), timeout=10)
    assert poor.status == "succeeded"
    assert poor.routing is not None and poor.routing.rule == "low-budget"
    assert any("budget_remaining" in t.why and t.matched for t in poor.routing.trace)
    assert poor.budget and poor.budget[0].name == "per-user"
    assert usd_to_nano(poor.budget[0].spent_usd) == usd_to_nano("0.60") + usd_to_nano(poor.usage.cost_usd)  # type: ignore[union-attr]


async def test_job_that_cannot_fit_is_rejected_naming_the_budget(tmp_path: Path) -> None:
    rules = rules_with_budgets(tmp_path, [
        {"name": "tiny", "scope": "tenant", "limit_usd": "0.0001", "window": "month"},
    ])
    async with inproc_stack(rules=rules) as stack:
        res = await stack.client.result(await stack.client.submit(
            prompt="write a long essay", context={**PRO, "tenant": "acme"}), timeout=10)
        stats = stack.emulator.stats()
    assert res.status == "rejected"
    assert res.error is not None and res.error.type == "budget_exceeded"
    assert "'tiny'" in res.error.message and "limit 0.000100000 USD" in res.error.message
    assert res.error.details is not None and res.error.details["remaining_usd"] == "0.000100000"
    assert stats["requests_total"] == 0  # nothing was sent upstream


async def test_a_stale_view_is_corrected_by_the_reservations_reply(tmp_path: Path, monkeypatch: Any) -> None:
    # The worker routes on counters it saw under a second ago; the reservation's reply carries the
    # real ones. Here the remembered view says $1.50 left, the counter says $0.90: the job must be
    # re-decided (low-budget) and its reservation swapped, leaving nothing reserved at the end.
    monkeypatch.setattr("worker.spend.VIEW_TTL_S", 3600.0)  # the remembered view is always used
    rules = rules_with_budgets(tmp_path, [
        {"name": "per-user", "scope": "user", "limit_usd": "1.50", "window": "day"},
    ])
    async with inproc_stack(rules=rules) as stack:
        first = await stack.client.result(await stack.client.submit(prompt="hello", context=PRO), timeout=10)
        assert first.routing is not None and first.routing.rule == "default"
        [key] = [k async for k in stack.client.redis.scan_iter(match="routeq:budget:per-user:user:u-1:*")]
        await stack.client.redis.hset(key, mapping={"spent": usd_to_nano("0.60"), "reserved": 0})  # type: ignore[misc]
        second = await stack.client.result(await stack.client.submit(prompt="hello", context=PRO), timeout=10)
        counter = await stack.client.redis.hgetall(key)  # type: ignore[misc]
    assert second.status == "succeeded"
    assert second.routing is not None and second.routing.rule == "low-budget"
    assert int(counter[b"reserved"]) == 0
    assert int(counter[b"spent"]) == usd_to_nano("0.60") + usd_to_nano(second.usage.cost_usd)  # type: ignore[union-attr]
