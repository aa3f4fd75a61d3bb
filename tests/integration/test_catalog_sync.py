"""``routeq catalog sync|show|diff`` as an operator runs them, and two workers' refreshers sharing
one Redis: exactly one syncs per period, and a hostile ``/models`` keeps the last good catalog."""

from __future__ import annotations

import asyncio
import copy
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from producer_client.keys import DEFAULT_PREFIX, Keys
from tests.support import emu
from tests.support.procs import API_KEY, Emulator, base_env
from tests.support.waiting import eventually
from worker.catalog_refresh import CatalogRefresher, RefreshSettings
from worker.catalog_store import CatalogStore
from worker.catalog_sync import SyncReport
from worker.openrouter.settings import OpenRouterSettings
from worker.shipped import CATALOG, shipped

SHIPPED = orjson.loads(shipped(CATALOG).read_bytes())


def routeq(redis_url: str, base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = base_env(OPENROUTER_BASE_URL=base_url, OPENROUTER_API_KEY=API_KEY)
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args, "--redis", redis_url],
                          capture_output=True, text=True, timeout=60, env=env)


def edited_catalog() -> dict[str, Any]:
    """The shipped catalog with gpt-4o's prompt price up, o1 gone and a new model without tools."""
    doc: dict[str, Any] = copy.deepcopy(SHIPPED)
    doc["data"] = [e for e in doc["data"] if e["id"] != "openai/o1"]
    for e in doc["data"]:
        if e["id"] == "openai/gpt-4o":
            e["pricing"]["prompt"] = "0.000003"
    doc["data"].append({"id": "acme/new", "name": "Acme New", "context_length": 32768,
                        "pricing": {"prompt": "0.0000001", "completion": "0.0000004"},
                        "supported_parameters": ["max_tokens"]})
    return doc


async def every_value(redis: Redis) -> bytes:
    """Every string and hash value in Redis, concatenated (to look for a secret)."""
    out = []
    async for key in redis.scan_iter():
        kind = await redis.type(key)
        if kind == b"string":
            out.append(await redis.get(key) or b"")
        elif kind == b"hash":
            out.extend(v for v in (await redis.hgetall(key)).values())  # type: ignore[misc]
    return b"".join(out)


@pytest.fixture()
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_sync_show_and_diff_from_the_command_line(
    redis_url: str, clean_emulator: Emulator, redis: Redis
) -> None:
    base = clean_emulator.base_url
    before = routeq(redis_url, base, "catalog", "show", "--json")
    assert before.returncode == 0, before.stderr
    assert orjson.loads(before.stdout)["version"] is None  # nothing in Redis: the catalog file

    first = routeq(redis_url, base, "catalog", "sync")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"catalog version 1 stored and active: {len(SHIPPED['data'])} models")
    again = routeq(redis_url, base, "catalog", "sync", "--json")
    assert again.returncode == 0 and orjson.loads(again.stdout)["why"] == "unchanged"

    emu.set_models(base, {"body": edited_catalog()})
    second = routeq(redis_url, base, "catalog", "sync", "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert orjson.loads(second.stdout)["version"] == 2

    diff = routeq(redis_url, base, "catalog", "diff", "--json")
    assert diff.returncode == 0, diff.stderr
    assert orjson.loads(diff.stdout) == {
        "from": 1, "to": 2, "added": ["acme/new"], "removed": ["openai/o1"],
        "price_changes": [{"model": "openai/gpt-4o", "price": "prompt", "unit": "USD/Mtok", "old": "2.5",
                           "new": "3"}],
        "capability_changes": [],
    }
    assert routeq(redis_url, base, "catalog", "diff", "1", "2", "--json").stdout == diff.stdout
    text = routeq(redis_url, base, "catalog", "diff").stdout
    assert "1 added, 1 removed, 1 price changes, 0 capability changes" in text
    assert [line.split() for line in text.splitlines() if "openai/gpt-4o" in line] == [
        ["openai/gpt-4o", "prompt", "2.5", "->", "3", "USD/Mtok"]]
    unknown = routeq(redis_url, base, "catalog", "diff", "1", "9")
    assert unknown.returncode == 1 and "no catalog version 9" in unknown.stderr

    emu.set_models(base, {"mode": "hostile", "free": "openai/gpt-4o"})
    hostile = routeq(redis_url, base, "catalog", "sync")
    assert hostile.returncode == 1, hostile.stdout
    assert "sync kept-last-good: suspicious: paid model now free: openai/gpt-4o" in hostile.stdout
    assert "kept version 2 active" in hostile.stdout
    lines = hostile.stdout.splitlines()
    assert any("hostile/negative-price" in line and "is negative" in line for line in lines)
    report = orjson.loads(await redis.get(Keys(DEFAULT_PREFIX).catalog_report) or b"{}")
    assert report["outcome"] == "kept-last-good" and report["version"] == 2

    shown = orjson.loads(routeq(redis_url, base, "catalog", "show", "--json").stdout)
    assert (shown["version"], shown["active"]) == (2, True)
    assert [m["id"] for m in shown["models"]] == [e["id"] for e in edited_catalog()["data"]]
    model = routeq(redis_url, base, "catalog", "show", "openai/gpt-4o", "--json")
    info = orjson.loads(model.stdout)["model"]
    assert (info["prompt_per_mtok"], info["completion_per_mtok"], info["tools"], info["vision"]) == (
        "3", "10", True, True)
    table = routeq(redis_url, base, "catalog", "show").stdout.splitlines()
    assert [line.split()[:4] for line in table if line.startswith("acme/new ")] == [
        ["acme/new", "0.1", "0.4", "0"]]
    missing = routeq(redis_url, base, "catalog", "show", "openai/o1")
    assert missing.returncode == 1 and "'openai/o1' is not in the catalog (version 2)" in missing.stderr

    assert API_KEY.encode() not in await every_value(redis)


class Fleet:
    """Two workers' refreshers on one Redis, each with its own connection."""

    def __init__(self, redis_url: str, base_url: str, period_s: float, retry_s: float) -> None:
        self.reports: list[tuple[str, SyncReport]] = []
        self.clients = [Redis.from_url(redis_url) for _ in range(2)]
        settings = OpenRouterSettings(base_url=base_url, api_key=API_KEY)
        self.refreshers = [
            CatalogRefresher(CatalogStore(client, Keys(DEFAULT_PREFIX)), settings,
                             RefreshSettings(period_s, retry_s), on_report=self._collector(name))
            for name, client in zip("ab", self.clients, strict=True)
        ]
        self.tasks: list[asyncio.Task[None]] = []

    def _collector(self, name: str) -> Any:
        async def collect(report: SyncReport) -> None:
            self.reports.append((name, report))
        return collect

    def start(self) -> None:
        self.tasks = [asyncio.create_task(r.run()) for r in self.refreshers]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients:
            await client.aclose()

    def count(self, outcome: str | None = None) -> int:
        return sum(1 for _, r in self.reports if outcome is None or r.outcome == outcome)


async def test_two_workers_sync_once_per_period_and_keep_the_last_good_catalog(
    redis_url: str, clean_emulator: Emulator, redis: Redis
) -> None:
    base = clean_emulator.base_url
    period = 1.0
    fleet = Fleet(redis_url, base, period_s=period, retry_s=0.3)
    store = CatalogStore(redis, Keys(DEFAULT_PREFIX))
    served_before = emu.models_served(base)
    fleet.start()
    try:
        await eventually(lambda: fleet.count() >= 4, timeout=60, what="four syncs by the fleet")
        starts = [r.at_ms for _, r in fleet.reports]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert min(gaps) >= (period - 0.1) * 1000, gaps  # never two syncs within one period
        assert emu.models_served(base) - served_before == fleet.count()  # nobody fetched on the side
        outcomes = [(r.outcome, r.version, r.stored) for _, r in fleet.reports]
        assert outcomes[0] == ("ok", 1, True)
        assert set(outcomes[1:]) == {("ok", 1, False)}  # the same catalog: not stored again

        emu.set_models(base, {"mode": "hostile"})
        kept = await eventually(lambda: [r for _, r in fleet.reports if r.outcome == "kept-last-good"],
                                timeout=60, what="a hostile sync refused")
        assert kept[0].why == "suspicious: paid model now free: openai/o1"
        assert kept[0].version == 1 and await store.active() == 1
        report = await store.report()
        assert report is not None and report["outcome"] == "kept-last-good"
        assert {r["id"] for r in report["refused"]} >= {"hostile/negative-price", "hostile/nan"}
        # A refused sync is retried after retry_s, not a whole period later.
        await eventually(lambda: fleet.count("kept-last-good") >= 2, timeout=60, what="a retry")
        retried = [r.at_ms for _, r in fleet.reports if r.outcome == "kept-last-good"]
        assert retried[1] - retried[0] < period * 1000

        emu.reset(base)  # upstream is sane again
        healed = fleet.count()
        await eventually(lambda: fleet.count() > healed and fleet.reports[-1][1].outcome == "ok",
                         timeout=60, what="a good sync after the hostile ones")
        assert await store.active() == 1 and await store.versions() == [1]
    finally:
        await fleet.stop()
