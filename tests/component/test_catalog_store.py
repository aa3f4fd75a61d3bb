"""Catalog versions in Redis (the store script on fakeredis and redis-server), one sync against the
in-process emulator, the fetch's limits, and the refresher surviving Redis trouble."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import fakeredis
import httpx
import orjson
import pytest
from redis.asyncio import Redis

from producer_client.keys import Keys
from tests.support.waiting import eventually
from worker.catalog import validate_models_json
from worker.catalog_refresh import CatalogRefresher, RefreshSettings
from worker.catalog_store import CatalogStore
from worker.catalog_sync import CatalogFetchError, SyncReport, fetch_models, sync
from worker.emulator.models_faults import ModelsConfig
from worker.emulator.runner import RunningEmulator
from worker.openrouter.settings import OpenRouterSettings
from worker.shipped import CATALOG, shipped

KEYS = Keys("t:")
SHIPPED = orjson.loads(shipped(CATALOG).read_bytes())
SECRET = "sk-or-v1-catalog-SECRET-0123456789"


def priced(doc: dict[str, Any], model: str, prompt: str) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    for e in changed["data"]:
        if e["id"] == model:
            e["pricing"]["prompt"] = prompt
    return changed


async def test_store_activates_publishes_and_loads_back(script_redis: Redis) -> None:
    store = CatalogStore(script_redis, KEYS)
    validated = validate_models_json({**SHIPPED, "data": [*SHIPPED["data"], "junk"]})
    async with script_redis.pubsub() as pubsub:
        await pubsub.subscribe(KEYS.catalog_changed)
        await pubsub.get_message(timeout=1)  # the subscribe confirmation
        number = await store.store(validated.document, validated.refused, "http://emu/m", fetched_ms=1234)
        message = await eventually(lambda: pubsub.get_message(timeout=0.1), timeout=5, what="catalog:changed")
    assert number == 1 and message["data"] == b"1"
    assert await store.active() == 1
    loaded = await store.load()
    assert loaded is not None and loaded.number == 1
    assert dict(loaded.catalog.models) == dict(validated.catalog.models)
    assert loaded.refused == validated.refused and loaded.refused[0].reason == "not an object (string)"
    assert (loaded.fetched_ms, loaded.checked_ms, loaded.source) == (1234, 1234, "http://emu/m")
    fields = await script_redis.hgetall(KEYS.catalog_version(1))  # type: ignore[misc]
    assert int(fields[b"models"]) == len(validated.catalog) and int(fields[b"routers"]) == 0
    await store.touch(1, checked_ms=5678)
    assert (await store.load(1)).checked_ms == 5678  # type: ignore[union-attr]
    assert await store.load(2) is None


async def test_only_the_last_versions_are_kept(script_redis: Redis) -> None:
    store = CatalogStore(script_redis, KEYS, keep=3)
    doc = validate_models_json(SHIPPED).document
    numbers = [await store.store(doc, (), "src") for _ in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    assert await store.versions() == [3, 4, 5]
    assert await store.active() == 5
    assert not await script_redis.exists(KEYS.catalog_version(1), KEYS.catalog_version(2))


async def test_activation_only_moves_forward(script_redis: Redis) -> None:
    store = CatalogStore(script_redis, KEYS)
    await script_redis.set(KEYS.catalog_active, 7)  # a later sync already activated its version
    doc = validate_models_json(SHIPPED).document
    assert await store.store(doc, (), "src") == 1
    assert await store.active() == 7
    assert await store.load(1) is not None


async def test_no_active_version_means_the_catalog_file(script_redis: Redis) -> None:
    store = CatalogStore(script_redis, KEYS)
    assert await store.active() is None and await store.load() is None and await store.report() is None
    assert await store.versions() == []


# -- one sync against the in-process emulator ----------------------------------------------------


def settings_for(emu: RunningEmulator) -> OpenRouterSettings:
    return OpenRouterSettings(base_url=emu.base_url, api_key=SECRET)


def serve(emu: RunningEmulator, doc: dict[str, Any]) -> None:
    emu.app.models_config = ModelsConfig.from_dict(doc)


async def test_sync_stores_then_skips_an_unchanged_catalog(redis: Redis, emu: RunningEmulator) -> None:
    store = CatalogStore(redis, KEYS)
    first = await sync(store, settings_for(emu))
    assert (first.outcome, first.version, first.stored, first.models) == ("ok", 1, True, len(SHIPPED["data"]))
    second = await sync(store, settings_for(emu))
    assert (second.outcome, second.why, second.version, second.stored) == ("ok", "unchanged", 1, False)
    assert await store.versions() == [1]
    loaded = await store.load()
    assert loaded is not None and loaded.checked_ms == second.at_ms >= loaded.fetched_ms
    assert await store.report() == second.as_dict()

    serve(emu, {"body": priced(SHIPPED, "openai/gpt-4o", "0.000003")})
    third = await sync(store, settings_for(emu))
    assert (third.outcome, third.version, third.previous) == ("ok", 2, 1)
    new = (await store.load()).catalog.get("openai/gpt-4o")  # type: ignore[union-attr]
    assert new is not None and str(new.prompt_price) == "0.000003"


@pytest.mark.parametrize(
    ("served", "outcome", "why"),
    [
        ({"mode": "hostile"}, "kept-last-good", "suspicious: paid model now free: openai/o1"),
        ({"mode": "partial"}, "kept-last-good", "suspicious: partial list: 6 of 13 entries"),
        ({"mode": "partial", "keep": 0.7}, "kept-last-good", "suspicious: partial list: 9 of 13"),
        ({"mode": "empty"}, "kept-last-good", "suspicious: no model with a fixed price"),
        ({"body": {"data": SHIPPED["data"][:9]}}, "kept-last-good", "suspicious: 4 of 13 models gone (30%)"),
        ({"mode": "malformed"}, "failed", "the body is not JSON"),
        ({"mode": "malformed", "kind": "html"}, "failed", "the body is not JSON"),
        ({"mode": "malformed", "kind": "array"}, "failed", "the body is a JSON list, not an object"),
        ({"mode": "hostile", "non_list": True}, "failed", 'needs a "data" list (got object)'),
        ({"mode": "error", "status": 503}, "failed", "answered HTTP 503"),
        ({"status": 429}, "failed", "answered HTTP 429"),
    ],
)
async def test_a_bad_sync_keeps_the_last_good_catalog(
    redis: Redis, emu: RunningEmulator, served: dict[str, Any], outcome: str, why: str
) -> None:
    store = CatalogStore(redis, KEYS)
    good = await sync(store, settings_for(emu))
    serve(emu, served)
    report = await sync(store, settings_for(emu))
    assert (report.outcome, report.stored, report.version) == (outcome, False, good.version)
    assert report.why is not None and why in report.why, report.why
    assert await store.active() == good.version and await store.versions() == [good.version]
    assert await store.report() == report.as_dict()


async def test_force_accepts_a_suspicious_catalog_and_says_so(redis: Redis, emu: RunningEmulator) -> None:
    store = CatalogStore(redis, KEYS)
    await sync(store, settings_for(emu))
    serve(emu, {"mode": "hostile", "pad_mb": 5})
    report = await sync(store, settings_for(emu), force=True)
    assert (report.outcome, report.version, report.forced) == ("ok", 2, True)
    assert report.suspicious == "paid model now free: openai/o1"
    assert report.why == "accepted with --force although suspicious: paid model now free: openai/o1"
    assert len(report.refused) == report.entries - report.models
    # The 5 MB description is not stored: versions hold what routeq reads.
    assert len(await redis.hget(KEYS.catalog_version(2), "doc")) < 64 * 1024  # type: ignore[misc]
    refused = orjson.loads(await redis.hget(KEYS.catalog_version(2), "refused"))  # type: ignore[misc]
    assert len(refused) == len(report.refused) and {"index", "id", "reason"} == set(refused[0])


async def test_the_first_sync_has_nothing_to_compare_but_needs_models(
    redis: Redis, emu: RunningEmulator
) -> None:
    store = CatalogStore(redis, KEYS)
    serve(emu, {"mode": "empty"})
    report = await sync(store, settings_for(emu))
    assert (report.outcome, report.version) == ("kept-last-good", None)
    serve(emu, {"mode": "hostile"})  # nothing to compare with: a paid model cannot be "now" free
    report = await sync(store, settings_for(emu))
    assert (report.outcome, report.version, report.refused != ()) == ("ok", 1, True)


# -- fetching -------------------------------------------------------------------------------------


async def test_fetch_never_shows_the_key() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text=f"upstream saw {request.headers['authorization']}")

    settings = OpenRouterSettings(base_url="http://upstream.test/api/v1", api_key=SECRET)
    with pytest.raises(CatalogFetchError) as info:
        await fetch_models(settings, transport=httpx.MockTransport(echo))
    assert SECRET not in str(info.value) and "[redacted]" in str(info.value)
    assert "answered HTTP 500" in str(info.value)


async def test_fetch_refuses_an_oversized_body(emu: RunningEmulator) -> None:
    serve(emu, {"mode": "hostile", "pad_mb": 2})
    with pytest.raises(CatalogFetchError, match="over the 1048576-byte limit"):
        await fetch_models(settings_for(emu), max_bytes=1024 * 1024)
    assert len((await fetch_models(settings_for(emu)))["data"]) > len(SHIPPED["data"])


async def test_fetch_sends_the_key_and_reads_the_models(emu: RunningEmulator) -> None:
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json=SHIPPED)

    doc = await fetch_models(settings_for(emu), transport=httpx.MockTransport(handler))
    assert doc == SHIPPED and seen == [f"Bearer {SECRET}"]


# -- the refresher --------------------------------------------------------------------------------


async def test_refresher_survives_redis_going_away_and_syncs_when_it_is_back(
    emu: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    redis: Redis = fakeredis.FakeAsyncRedis(server=server)
    store = CatalogStore(redis, KEYS)
    reports: list[SyncReport] = []

    async def collect(report: SyncReport) -> None:
        reports.append(report)

    refresher = CatalogRefresher(store, settings_for(emu), RefreshSettings(refresh_s=30, retry_s=0.05),
                                 on_report=collect)
    caplog.set_level(logging.WARNING, "routeq.catalog")
    task = asyncio.create_task(refresher.run())
    try:
        await eventually(lambda: len(caplog.records) >= 2, timeout=10, what="two logged failures")
        assert not task.done() and not reports
        server.connected = True
        await eventually(lambda: reports, timeout=10, what="a sync once Redis is back")
        assert reports[0].outcome == "ok" and await store.active() == 1
        # The lease now lasts the period: the refresher waits instead of syncing again.
        assert 25_000 < await redis.pttl(KEYS.catalog_lock) <= 30_000
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await redis.aclose()
    assert SECRET not in caplog.text


async def test_a_failed_sync_shortens_the_lease(redis: Redis, emu: RunningEmulator) -> None:
    store = CatalogStore(redis, KEYS)
    refresher = CatalogRefresher(store, settings_for(emu), RefreshSettings(refresh_s=600, retry_s=2))
    serve(emu, {"status": 503})
    report = await refresher.try_once()
    assert report is not None and report.outcome == "failed"
    assert 0 < await redis.pttl(KEYS.catalog_lock) <= 2000
    assert await refresher.try_once() is None  # still held: nobody syncs before the retry time
    assert 0 < await refresher.next_try_s() <= 2


def test_refresh_settings_from_env() -> None:
    assert RefreshSettings.from_env({}) == RefreshSettings(3600, 300)
    assert RefreshSettings.from_env({"ROUTEQ_CATALOG_REFRESH_S": "60"}) == RefreshSettings(60, 60)
    assert not RefreshSettings.from_env({"ROUTEQ_CATALOG_REFRESH_S": "0"}).enabled
    from producer_client.envvars import SettingsError

    with pytest.raises(SettingsError, match="ROUTEQ_CATALOG_REFRESH_S"):
        RefreshSettings.from_env({"ROUTEQ_CATALOG_REFRESH_S": "-1"})


# -- the emulator's /models control ---------------------------------------------------------------


async def test_the_emulator_serves_what_it_is_told_and_reset_restores_it(emu: RunningEmulator) -> None:
    control = emu.base_url.removesuffix("/api/v1") + "/_emulator"
    async with httpx.AsyncClient() as http:
        normal = (await http.get(f"{emu.base_url}/models")).json()
        assert [e["id"] for e in normal["data"]] == [e["id"] for e in SHIPPED["data"]]
        for bad in ({"mode": "bogus"}, {"mode": "partial", "keep": 2}, {"status": 42}, {"pad_mb": 1000},
                    {"mode": "body"}, {"free": 3}, {"surprise": 1}):
            answer = await http.put(f"{control}/models", json=bad)
            assert answer.status_code == 400, bad
        (await http.put(f"{control}/models", json={"mode": "partial", "keep": 0.25})).raise_for_status()
        partial = (await http.get(f"{emu.base_url}/models")).json()
        total = len(SHIPPED["data"])
        assert (len(partial["data"]), partial["total_count"]) == (total // 4, total)
        await http.put(f"{control}/models", json={"body": [1, 2], "status": 202})
        odd = await http.get(f"{emu.base_url}/models")
        assert (odd.status_code, odd.json()) == (202, [1, 2])
        state = (await http.get(f"{control}/models")).json()
        assert state == {"config": {"mode": "body", "body": [1, 2], "status": 202}, "served": 3}
        await http.post(f"{control}/reset")
        assert (await http.get(f"{control}/models")).json() == {"config": {"mode": "normal"}, "served": 0}
        assert (await http.get(f"{emu.base_url}/models")).json() == normal
