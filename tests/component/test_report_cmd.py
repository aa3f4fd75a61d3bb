"""``routeq report`` and ``routeq report experiment`` over hand-built rollups with known numbers."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from producer_client.keys import Keys
from worker.analytics.rollups import RollupReader
from worker.cli.main import main
from worker.rollup_format import LATENCY_BOUNDS_MS

KEYS = Keys()
MINI, SONNET, LLAMA = "openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet", "meta-llama/llama-3.1-8b-instruct"
NOW = datetime.now(UTC)
RECENT, EARLIER = NOW - timedelta(hours=2), NOW - timedelta(hours=26)
CHAT = f"default|{MINI}|-|chat|acme"
CODE = f"code-tasks|{SONNET}|-|code|beta"


def hour(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H")


def day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def fields(dims: str, **metrics: Any) -> dict[str, str]:
    return {f"{dims}|{name.replace('_', ':')}": str(value) for name, value in metrics.items()}


# Ten chat jobs an hour ago (one failed, two fell back, four scored 1, 1, 0.5, 0.5); ten more a
# day earlier without feedback; five code jobs an hour ago.
DATA = {
    hour(RECENT): {
        **fields(CHAT, n=10, s_succeeded=9, s_failed=1, e_timeout=1, fb=2, cost=1_000_000, pt=1000, ct=500,
                 h_3=5, h_5=4, h_7=1, qn=4, qs=3.0, qq=2.5, l_good=3),
        **fields(CODE, n=5, s_succeeded=5, cost=5_000_000, h_6=5),
        "not|a|rollup|field": "99",
    },
    hour(EARLIER): fields(CHAT, n=10, s_succeeded=10, cost=3_000_001, h_3=10),
}


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[fakeredis.FakeServer]:
    """A fake Redis every command connects to, holding DATA; rules from a file of our own."""
    fake = fakeredis.FakeServer()

    async def fill() -> None:
        redis = fakeredis.FakeAsyncRedis(server=fake)
        for name, mapping in DATA.items():
            await redis.hset(KEYS.rollup(name), mapping=mapping)  # type: ignore[misc]
        await redis.aclose()

    asyncio.run(fill())
    monkeypatch.setattr("producer_client.connection.connect",
                        lambda url, **kw: fakeredis.FakeAsyncRedis(server=fake))
    monkeypatch.delenv("ROUTEQ_PREFIX", raising=False)
    yield fake


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_reader_sums_hours_and_groups_by_model_and_day(server: fakeredis.FakeServer) -> None:
    async def read(by: tuple[str, ...]) -> Any:
        redis = fakeredis.FakeAsyncRedis(server=server)
        try:
            return await RollupReader(redis, KEYS, hours_per_trip=7).read(NOW - timedelta(days=2), NOW, by)
        finally:
            await redis.aclose()

    total = asyncio.run(read(())).total()
    assert (total.n, total.succeeded, total.fallbacks, total.cost_nano) == (25, 24, 2, 9_000_001)
    assert total.errors == {"timeout": 1} and total.labels == {"good": 3}
    assert total.histogram[3] == 15 and total.histogram[5] == 4 and total.histogram[6] == 5
    assert (total.latency_ms(0.5), total.latency_ms(0.95)) == (LATENCY_BOUNDS_MS[3], LATENCY_BOUNDS_MS[6])
    by_day = asyncio.run(read(("model", "day"))).groups
    if day(RECENT) == day(EARLIER):  # only when run in the first hours of a UTC day
        pytest.skip("both hours fall on one UTC day")
    assert by_day[(MINI, day(RECENT))].n == 10 and by_day[(MINI, day(EARLIER))].n == 10
    assert by_day[(MINI, day(EARLIER))].cost_nano == 3_000_001
    assert (SONNET, day(EARLIER)) not in by_day


async def test_the_reader_agrees_on_fake_and_real_redis_and_survives_an_error(script_redis: Redis) -> None:
    for name, mapping in DATA.items():
        await script_redis.hset(KEYS.rollup(name), mapping=mapping)  # type: ignore[misc]
    reader = RollupReader(script_redis, KEYS, hours_per_trip=5)  # several round trips
    rollup = await reader.read(NOW - timedelta(days=3), NOW, ("model",))
    assert {g: (m.n, m.cost_nano, m.qn) for g, m in rollup.groups.items()} == {
        (MINI,): (20, 4_000_001, 4), (SONNET,): (5, 5_000_000, 0)}
    assert rollup.hours == 73
    await script_redis.set(KEYS.rollup(hour(NOW - timedelta(hours=40))), "not a hash")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await reader.read(NOW - timedelta(days=3), NOW)
    assert await script_redis.ping()  # the half-read connection was dropped, not reused
    again = await RollupReader(script_redis, KEYS).read(NOW - timedelta(hours=30), NOW)
    assert again.total().n == 25


def test_report_json_has_exact_money_rates_latency_and_quality(
    server: fakeredis.FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "report", "--since", "3d", "--format", "json")
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["by"] == [] and len(doc["rows"]) == 1
    total = doc["total"]
    assert total["jobs"] == 25 and total["success_rate"] == 24 / 25 and total["fallback_rate"] == 2 / 25
    assert total["cost_usd"] == "0.009000001"
    assert total["cost_per_1k_jobs_usd"] == "0.360000040"  # 9,000,001 nano x 1000 / 25, exact
    assert total["latency_ms"]["p50"] == 100 and total["latency_ms"]["p95"] == 1000
    quality = total["quality"]
    assert quality["n"] == 4 and quality["mean"] == pytest.approx(0.75)
    # Four scores 1, 1, 0.5, 0.5: s = sqrt(1/12), t(0.975, 3) = 3.182 (t table).
    half = 3.182446305284263 * (1 / 12) ** 0.5 / 2
    assert quality["ci95"] == pytest.approx([0.75 - half, 0.75 + half])


def test_report_groups_by_model_as_a_table_and_as_csv(
    server: fakeredis.FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "report", "--since", "3d", "--by", "model")
    assert code == 0
    lines = out.splitlines()
    mini = next(line for line in lines if line.startswith(MINI))
    sonnet = next(line for line in lines if line.startswith(SONNET))
    assert "20" in mini.split() and "95.0%" in mini and "0.004000001" in mini and "0.200000050" in mini
    assert "0.750 [" in mini and "1.000000000" in sonnet  # 5 jobs at 1,000,000 nano each
    assert lines[-1].startswith("total") and "0.009000001" in lines[-1]
    code, out, _ = run_cli(capsys, "report", "--since", "3d", "--by", "model,task_type", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["model"], r["task_type"], r["jobs"]) for r in rows] == [(SONNET, "code", "5"),
                                                                       (MINI, "chat", "20")]
    assert rows[1]["cost_usd"] == "0.004000001" and rows[1]["quality_n"] == "4"
    assert rows[0]["quality_mean"] == "" and rows[0]["p95_ms"] == "1000"


def test_report_refuses_bad_usage_and_says_when_there_is_nothing(
    server: fakeredis.FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "report", "--by", "colour")
    assert code == 2 and "cannot group by 'colour'" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "report", "--since", "yesterday-ish")
    assert code == 2 and "cannot read the time" in err
    code, out, _ = run_cli(capsys, "report", "--since", "1h", "--until", "now")
    assert code == 0 and "no jobs in this window" in out


# -- experiments --------------------------------------------------------------------------------


def experiment_rules(tmp_path: Path, weights: tuple[int, int] = (50, 50)) -> Path:
    doc = orjson.loads((Path(__file__).resolve().parents[2] / "worker/defaults/rules.json").read_bytes())
    doc["experiments"] = [{"name": "cls", "rule": "default", "unit": "user_id", "salt": "s1",
                           "variants": [{"name": "control", "weight": weights[0]},
                                        {"name": "cheap", "weight": weights[1], "model": LLAMA}]}]
    path = tmp_path / "rules.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def fill_experiment(server: fakeredis.FakeServer, units: tuple[int, int]) -> None:
    """200 scored jobs per variant: control right 95 % of the time, cheap 75 %."""
    async def fill() -> None:
        redis = fakeredis.FakeAsyncRedis(server=server)
        control, cheap = f"default|{MINI}|cls:control|chat|acme", f"default|{LLAMA}|cls:cheap|chat|acme"
        await redis.hset(KEYS.rollup(hour(RECENT)), mapping={  # type: ignore[misc]
            **fields(control, n=400, s_succeeded=400, cost=40_000_000, h_4=400, qn=200, qs=190.0, qq=190.0),
            **fields(cheap, n=400, s_succeeded=396, s_failed=4, cost=4_000_000, h_5=400, qn=200, qs=150.0,
                     qq=150.0),
        })
        for variant, count in zip(("control", "cheap"), units, strict=True):
            units_key = KEYS.experiment_units("cls", variant)
            await redis.pfadd(units_key, *(f"u{variant}{i}" for i in range(count)))
        await redis.aclose()

    asyncio.run(fill())


def test_experiment_report_shows_units_quality_lift_and_a_fair_split(
    server: fakeredis.FakeServer, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROUTEQ_RULES", str(experiment_rules(tmp_path)))
    fill_experiment(server, (505, 495))
    code, out, err = run_cli(capsys, "report", "experiment", "cls", "--since", "1d", "--format", "json")
    assert code == 0, err
    doc = orjson.loads(out)
    variants = {v["name"]: v for v in doc["variants"]}
    assert variants["control"]["weight"] == 50 and variants["cheap"]["model"] == LLAMA
    assert 495 <= variants["control"]["units"] <= 515 and 485 <= variants["cheap"]["units"] <= 505  # HLL
    assert variants["cheap"]["jobs"] == 400 and variants["cheap"]["success_rate"] == 0.99
    assert variants["cheap"]["cost_per_job_usd"] == "0.000010000"
    assert doc["sample_ratio"]["df"] == 1 and not doc["sample_ratio"]["mismatch"]
    (lift,) = doc["lift"]
    assert lift["variant"] == "cheap" and lift["difference"] == pytest.approx(-0.2)
    _, high = lift["difference_ci95"]
    assert high < 0 and lift["verdict"] == "worse"
    assert lift["relative"] == pytest.approx(0.75 / 0.95 - 1)
    code, out, _ = run_cli(capsys, "report", "experiment", "cls", "--since", "1d")
    assert "worse" in out and "units follow the configured weights" in out


def test_experiment_report_flags_a_sample_ratio_mismatch(
    server: fakeredis.FakeServer, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROUTEQ_RULES", str(experiment_rules(tmp_path, (90, 10))))
    fill_experiment(server, (500, 500))  # a 90/10 experiment split 50/50: broken assignment
    code, out, _ = run_cli(capsys, "report", "experiment", "cls", "--format", "json")
    doc = orjson.loads(out)
    assert code == 0 and doc["sample_ratio"]["mismatch"] and doc["sample_ratio"]["p_value"] < 1e-6
    assert "MISMATCH" in doc["sample_ratio_note"]


def test_an_unknown_experiment_is_a_clear_error(
    server: fakeredis.FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "report", "experiment", "nope")
    assert code == 1 and "no experiment 'nope'" in err and err.count("\n") == 1


# -- export -------------------------------------------------------------------------------------


def test_export_writes_the_routing_log_and_the_rollups_to_sqlite(
    server: fakeredis.FakeServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    now_ms = int(NOW.timestamp() * 1000)

    async def fill() -> None:
        redis = fakeredis.FakeAsyncRedis(server=server)
        base: dict[Any, Any] = {
                "status": "succeeded", "error": "", "rule": "default", "model": MINI, "model_served": MINI,
                "provider": "OpenAI", "task_type": "chat", "rules_version": "sha256:0123456789ab",
                "rules_number": "", "cost_usd": "0.000012345", "total_ms": "150", "attempts": "1",
                "prompt_sha256": "ab" * 32}
        await redis.xadd(KEYS.decisions, {**base, "job_id": "too-old"}, id=f"{now_ms - 5 * 86_400_000}-0")
        await redis.xadd(KEYS.decisions, {**base, "job_id": "j1"}, id=f"{now_ms - 60_000}-0")
        await redis.xadd(KEYS.decisions, {**base, "job_id": "j2", "status": "failed", "error": "timeout",
                                          "model_served": "", "cost_usd": "0", "variant": "exp:b",
                                          "tenant": "t2"}, id=f"{now_ms - 30_000}-0")
        await redis.hset(KEYS.feedback("j1"), mapping={"score": "0.75", "label": "good"})  # type: ignore[misc]
        await redis.set(KEYS.feedback_ref("j1"), f"{KEYS.rollup(hour(RECENT))}\t{CHAT}|\t12345\t150")
        await redis.aclose()

    asyncio.run(fill())
    target = tmp_path / "routing.db"
    code, out, err = run_cli(capsys, "export", "--since", "3d", "--sqlite", str(target))
    assert code == 0, err
    assert "2 jobs in routing_log, 3 rows in rollups" in out
    with sqlite3.connect(target) as db:
        db.row_factory = sqlite3.Row
        log = {r["job_id"]: r for r in db.execute("SELECT * FROM routing_log")}
        assert set(log) == {"j1", "j2"}
        j1, j2 = log["j1"], log["j2"]
        assert (j1["quality"], j1["label"], j1["tenant"], j1["variant"]) == (0.75, "good", "acme", None)
        assert (j1["cost_nano"], j1["cost_usd"], j1["latency_ms"]) == (12345, "0.000012345", 150)
        assert j1["model"] == MINI
        assert j1["time_ms"] == now_ms - 60_000 and j1["time"].endswith("+00:00")
        assert (j2["status"], j2["error"], j2["quality"], j2["variant"], j2["tenant"]) == (
            "failed", "timeout", None, "exp:b", "t2")
        totals = db.execute("SELECT SUM(jobs), SUM(cost_nano), SUM(quality_n) FROM rollups").fetchone()
        assert tuple(totals) == (25, 9_000_001, 4)
        chat = db.execute("SELECT * FROM rollups WHERE task_type = 'chat' AND quality_n = 4").fetchone()
        assert chat["hour"] == hour_start_iso(RECENT) and chat["p95_ms"] == LATENCY_BOUNDS_MS[7]
        assert orjson.loads(chat["errors"]) == {"timeout": 1} and chat["fallbacks"] == 2
    db.close()


def hour_start_iso(moment: datetime) -> str:
    return moment.replace(minute=0, second=0, microsecond=0).isoformat()


async def test_whole_days_come_from_the_day_tier_and_hours_before_its_first_from_the_hours(
    script_redis: Redis,
) -> None:
    d = (NOW - timedelta(days=2)).strftime("%Y%m%d")  # a UTC day wholly inside the 3-day window
    old_hour = fields(CHAT, n=3, s_succeeded=3, cost=300)  # 02:00, written before the day tier
    late_hour = fields(CHAT, n=4, s_succeeded=4, cost=400)  # 07:00, written to hour and day
    await script_redis.hset(KEYS.rollup(f"{d}02"), mapping=old_hour)  # type: ignore[misc]
    await script_redis.hset(KEYS.rollup(f"{d}07"), mapping=late_hour)  # type: ignore[misc]
    await script_redis.hset(KEYS.rollup_day(d), mapping={**late_hour, "_first": "7"})  # type: ignore[misc]
    tiered = await RollupReader(script_redis, KEYS, hours_per_trip=5).read(NOW - timedelta(days=3), NOW)
    hourly = await RollupReader(script_redis, KEYS, day_tier=False).read(NOW - timedelta(days=3), NOW)
    sums = [(r.total().n, r.total().cost_nano) for r in (tiered, hourly)]
    assert sums == [(7, 700), (7, 700)]
    # The day hash is read, not the hours it covers: make them disagree and the tier shows.
    await script_redis.hset(KEYS.rollup_day(d), f"{CHAT}|n", "40")  # type: ignore[misc]
    again = await RollupReader(script_redis, KEYS).read(NOW - timedelta(days=3), NOW, ("day",))
    assert again.groups[(f"{d[:4]}-{d[4:6]}-{d[6:]}",)].n == 43
    # A day without a day hash is read hour by hour (data from before the tier, or no jobs at all).
    await script_redis.delete(KEYS.rollup_day(d))
    assert (await RollupReader(script_redis, KEYS).read(NOW - timedelta(days=3), NOW)).total().n == 7


def test_split_days_keeps_only_whole_utc_days() -> None:
    from worker.analytics.rollups import hours_in, split_days

    start = datetime(2026, 11, 28, 22, tzinfo=UTC)
    whole, partial = split_days(hours_in(start, start + timedelta(hours=40)))  # to Nov 30 14:00
    assert whole == ["20261129"]
    assert partial == ["2026112822", "2026112823", *(f"20261130{h:02d}" for h in range(14))]
