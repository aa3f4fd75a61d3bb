"""Budget windows at their boundaries, on the clock this run has (real, or shifted by libfaketime).

``.ci/run`` runs these again at a month end, a year end and the DST change in Europe/Paris
(``ROUTEQ_TEST_TIMEZONE``), where a counter's window, its TTL and its alerts are easiest to get
wrong. Every instant is computed from ``now``: fakeredis expires keys by the same clock.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from worker.budget import applicable, parse_budgets, window_end, window_id
from worker.budget.ledger import BudgetLedger
from worker.budget.windows import EXPIRY_MARGIN, WindowKind

TIMEZONE = os.environ.get("ROUTEQ_TEST_TIMEZONE", "UTC")
KINDS: tuple[WindowKind, ...] = ("hour", "day", "week", "month")
# The longest a window can last on the wall clock of any zone: a 31-day month plus a DST hour.
LONGEST = {
    "hour": timedelta(hours=1),
    "day": timedelta(hours=25),
    "week": timedelta(days=7, hours=1),
    "month": timedelta(days=31, hours=1),
}


def budget(kind: WindowKind, limit: str = "0.000001") -> list[dict[str, str]]:
    return [{"name": f"per-{kind}", "scope": "global", "limit_usd": limit, "window": kind}]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_counter_lives_until_its_window_ends_plus_the_margin(
    script_redis: Redis, kind: WindowKind
) -> None:
    ledger = BudgetLedger(script_redis)
    now = datetime.now(UTC)
    (line,) = applicable(parse_budgets(budget(kind)), {}, now, TIMEZONE)
    end = window_end(kind, now, TIMEZONE)
    assert end is not None and now < end <= now + LONGEST[kind]
    local_end = end.astimezone(ZoneInfo(TIMEZONE))
    assert (local_end.minute, local_end.second) == (0, 0)
    if kind != "hour":
        assert local_end.hour == 0  # days, weeks and months start at local midnight
    assert (await ledger.reserve("j", (line,), 10)).ok
    ttl = await script_redis.ttl(line.key)
    expected = (end + EXPIRY_MARGIN).timestamp() - time.time()
    assert ttl > 0 and abs(ttl - expected) <= 5


@pytest.mark.parametrize("kind", KINDS)
async def test_across_a_boundary_each_window_has_its_own_counter_and_alerts(
    script_redis: Redis, kind: WindowKind
) -> None:
    ledger = BudgetLedger(script_redis)
    budgets = parse_budgets(budget(kind, "0.000001000"))  # 1,000 nano-USD
    end = window_end(kind, datetime.now(UTC), TIMEZONE)
    assert end is not None
    last_second, first_second = end - timedelta(seconds=1), end + timedelta(seconds=1)
    (before,) = applicable(budgets, {}, last_second, TIMEZONE)
    (after,) = applicable(budgets, {}, first_second, TIMEZONE)
    assert before.window == window_id(kind, last_second, TIMEZONE) != after.window
    assert before.key != after.key and after.expire_at is not None and before.expire_at is not None
    assert after.expire_at > before.expire_at

    await ledger.reserve("late", (before,), 900)
    await ledger.reserve("early", (after,), 900)  # the new window does not see the old holds
    # The job that reserved before the boundary settles into its own window, even now.
    late = await ledger.settle("late", 800)
    early = await ledger.settle("early", 500)
    assert [(s.window, s.spent_nano, s.reserved_nano) for s in late.lines] == [(before.window, 800, 0)]
    assert [(s.window, s.spent_nano, s.reserved_nano) for s in early.lines] == [(after.window, 500, 0)]
    assert [a.threshold for a in late.alerts] == [50, 80]
    assert [a.threshold for a in early.alerts] == [50]
    assert {a.window for a in (*late.alerts, *early.alerts)} == {before.window, after.window}
