"""``routeq demo --adaptive`` on the in-process stand-in, read from its printed tables; and the
demo's housekeeping (its prefix cleared and given TTLs without touching anything else)."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import fakeredis
import pytest

from tests.support.procs import free_port
from worker.demo.adaptive import TOLERANCE, run_adaptive
from worker.demo.housekeeping import DEMO_PREFIX, delete_prefix, expire_untimed

pytestmark = pytest.mark.timeout(180)

_ROW = re.compile(r"^\s*(?P<round>[12])\s+(?P<rules>\d+)\s+(?P<jobs>\d+)\s+(?P<success>[\d.]+)%\s+.*?\s+"
                  r"(?P<cpj>\d+\.\d{9})\s+(?P<total>\d+\.\d{9})\s+(?P<quality>\d\.\d{3}) \[[^\]]*\]\s+"
                  r"(?P<scored>\d+)$")


def comparison(text: str) -> dict[int, dict[str, str]]:
    """The rows of step 8's table, by round."""
    tail = text.split("step 8: round 1 against round 2", 1)[1]
    return {int(m["round"]): m.groupdict() for line in tail.splitlines() if (m := _ROW.match(line))}


async def test_on_the_stand_in_round_two_costs_less_per_job_with_quality_held() -> None:
    out = io.StringIO()
    outcome = await run_adaptive(f"redis://127.0.0.1:{free_port()}/0", out=out, jobs=240)
    text = out.getvalue()
    assert "in-process Redis stand-in" in text
    assert outcome.ok, text[-3000:]
    assert [f"step {n}: " in text for n in range(1, 9)] == [True] * 8
    rows = comparison(text)
    assert set(rows) == {1, 2}, text[-2000:]
    first, second = rows[1], rows[2]
    assert (first["rules"], second["rules"]) == ("1", "2")
    assert first["jobs"] == second["jobs"] == first["scored"] == second["scored"] == "240"
    assert first["success"] == second["success"] == "100.0"
    assert Decimal(second["cpj"]) < Decimal(first["cpj"])
    assert float(second["quality"]) >= float(first["quality"]) - TOLERANCE
    # The printed figures are the outcome's own.
    assert [str(r.cost_per_job_nano) for r in outcome.rounds] == [
        str(int(Decimal(row["cpj"]) * 10**9)) for row in (first, second)]


async def test_housekeeping_touches_only_the_demo_prefix() -> None:
    r = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    await r.set("users:own", "1")
    await r.set("routeq:decisions", "production")  # the production prefix: never the demo's
    await r.set("routeq-demo-old:x", "1")  # a look-alike prefix: not the demo's either
    await r.set(f"{DEMO_PREFIX}decisions", "1")
    await r.set(f"{DEMO_PREFIX}result:a", "1", ex=3600)

    assert await expire_untimed(r, DEMO_PREFIX, 600) == [f"{DEMO_PREFIX}decisions"]
    assert 0 < await r.ttl(f"{DEMO_PREFIX}decisions") <= 600
    assert await r.ttl(f"{DEMO_PREFIX}result:a") > 600  # a TTL the worker gave stays as it is
    assert [await r.ttl(k) for k in ("users:own", "routeq:decisions", "routeq-demo-old:x")] == [-1, -1, -1]

    assert await delete_prefix(r, DEMO_PREFIX) == 2
    assert sorted(await r.keys("*")) == [b"routeq-demo-old:x", b"routeq:decisions", b"users:own"]
    await r.aclose()
