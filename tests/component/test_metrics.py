"""Prometheus metrics: a scrape after a known run shows exactly that run; labels stay bounded;
gauges come from a background read, so a scrape never waits on Redis."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from producer_client.contract import Result
from producer_client.keys import Keys
from producer_client.money import usd_to_nano
from tests.support.inproc import inproc_stack
from worker.budget import BudgetState
from worker.catalog import Catalog
from worker.health import BreakerSettings, ModelHealth
from worker.metrics import (
    NO_METRICS,
    GaugeSnapshot,
    MetricsSettings,
    PrometheusMetrics,
    metrics_from_env,
)
from worker.metrics_gauges import GaugeReader
from worker.metrics_server import MetricsError, MetricsServer, start_metrics
from worker.openrouter.models import Attempt
from worker.settings import SettingsError
from worker.shipped import CATALOG, shipped

KEYS = Keys()
CATALOG_NOW = Catalog.load(shipped(CATALOG))
# The vision rule's chain is gpt-4o, claude-3.5-sonnet, gemini-2.0-flash: with the first two down
# vision jobs fall back to the third, and tools jobs (gpt-4o, claude-3.5-sonnet) fail.
FAULTS = {"fail_always": ["openai/gpt-4o", "anthropic/claude-3.5-sonnet"]}
ON = MetricsSettings(port=0)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@asynccontextmanager
async def _served(metrics: PrometheusMetrics, **kwargs: Any) -> AsyncIterator[MetricsServer]:
    server = await start_metrics(metrics, ON, slots=kwargs.pop("slots", lambda: (0, 0)), **kwargs)
    try:
        yield server
    finally:
        await server.aclose()


async def _scrape(server: MetricsServer) -> Samples:
    async with httpx.AsyncClient() as http:
        resp = await http.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
    resp.raise_for_status()
    assert resp.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def _series(samples: Samples, name: str, *keep: str) -> dict[tuple[str, ...], float]:
    """Values of one metric summed by the ``keep`` labels (zero values left out)."""
    out: Counter[tuple[str, ...]] = Counter()
    for (n, labels), value in samples.items():
        if n == name and value:
            d = dict(labels)
            out[tuple(d.get(k, "") for k in keep)] += value
    return dict(out)


def _model(r: Result) -> str:
    assert r.routing is not None
    return r.routing.model_served or r.routing.model


# -- a known run -----------------------------------------------------------------------------------


async def test_a_scrape_after_a_known_run_shows_exactly_that_run() -> None:
    metrics = PrometheusMetrics(CATALOG_NOW)
    async with inproc_stack(faults=FAULTS, metrics=metrics) as stack, _served(metrics) as server:
        specs = (
            [{"prompt": f"hi {i}", "context": {"user_tier": "free"}} for i in range(3)]
            + [{"prompt": "what is this?", "context": {"user_tier": "pro", "needs_vision": True},
                "queue": "batch"}] * 2
            + [{"prompt": "call it", "context": {"user_tier": "pro", "needs_tools": True},
                "params": {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}}]
        )
        ids = [await stack.client.submit(**{**s, "job_id": f"job-{n}"}) for n, s in enumerate(specs)]
        results = await stack.client.wait_all(ids, timeout=30)
        samples = await _scrape(server)

    statuses = Counter(r.status for r in results)
    assert statuses == {"succeeded": 5, "failed": 1}, statuses  # the run is the one intended
    queue_of = {f"job-{n}": s.get("queue", "interactive") for n, s in enumerate(specs)}

    jobs: Counter[tuple[str, ...]] = Counter()
    attempts: Counter[tuple[str, ...]] = Counter()
    fallbacks: Counter[tuple[str, ...]] = Counter()
    tokens: Counter[tuple[str, ...]] = Counter()
    cost: Counter[tuple[str, ...]] = Counter()
    for r in results:
        assert r.routing is not None
        jobs[(queue_of[r.job_id], r.status, r.routing.rule, _model(r), r.error.type if r.error else "")] += 1
        for a in r.routing.attempts:
            attempts[(a.model, str(a.status) if a.status else "", a.error_type or "")] += 1
        if r.routing.model_served and r.routing.model_served != r.routing.chain[0]:
            fallbacks[(r.routing.rule, r.routing.model_served)] += 1
        if r.usage:
            tokens[(_model(r), "input")] += r.usage.prompt_tokens
            tokens[(_model(r), "output")] += r.usage.completion_tokens
            cost[(_model(r),)] += usd_to_nano(r.usage.cost_usd)

    assert _series(samples, "routeq_jobs_total", "queue", "status", "rule", "model", "error_type") == jobs
    got_attempts = _series(samples, "routeq_upstream_attempts_total", "model", "status_code", "error_type")
    assert got_attempts == attempts
    assert _series(samples, "routeq_fallbacks_total", "rule", "model") == fallbacks == {
        ("vision-required", "google/gemini-2.0-flash-001"): 2}
    assert _series(samples, "routeq_tokens_total", "model", "token_type") == +tokens
    got_cost = _series(samples, "routeq_cost_usd_total", "model")
    assert got_cost.keys() == (+cost).keys()
    for key, nano in (+cost).items():
        assert got_cost[key] == pytest.approx(nano / 1e9, rel=1e-9)
    assert _series(samples, "routeq_job_duration_seconds_count", "queue", "status") == {
        ("interactive", "succeeded"): 3, ("batch", "succeeded"): 2, ("interactive", "failed"): 1}
    waits = _series(samples, "routeq_queue_wait_seconds_count", "queue")
    assert waits == {("interactive",): 4, ("batch",): 2}
    per_model: Counter[tuple[str, ...]] = Counter()
    for (model, _, _), n in attempts.items():
        per_model[(model,)] += n
    assert _series(samples, "routeq_upstream_latency_seconds_count", "model") == per_model


async def test_label_values_stay_bounded() -> None:
    metrics = PrometheusMetrics(CATALOG_NOW, process=False)
    known, typo = "openai/gpt-4o-mini", "openai/gpt-4o-mnii"
    for model in (known, typo, "made-up/model-1", "made-up/model-2"):
        metrics.attempt(Attempt(model, (), 200, None, None, 10))
    for n in range(300):  # past the cap on rule names
        metrics.attempt(Attempt(known, (), 500, f"weird_{n}", "boom", 10))
    async with _served(metrics) as server:
        samples = await _scrape(server)
    by_model = _series(samples, "routeq_upstream_attempts_total", "model")
    assert by_model == {(known,): 301, ("other",): 3}
    errors = {k[0] for k in _series(samples, "routeq_upstream_attempts_total", "error_type")}
    assert "other" in errors and len(errors) <= 62  # the cap, "" and "other"
    # A catalog reload makes a model known from then on.
    metrics.set_catalog(Catalog({**CATALOG_NOW.models, typo: CATALOG_NOW.models[known]}))
    metrics.attempt(Attempt(typo, (), 200, None, None, 10))
    async with _served(metrics) as server:
        assert _series(await _scrape(server), "routeq_upstream_attempts_total", "model")[(typo,)] == 1


# -- gauges ----------------------------------------------------------------------------------------


async def test_gauges_show_queues_circuits_budgets_and_slots(redis: Redis) -> None:
    now_ms = int(time.time() * 1000)
    await redis.zadd(KEYS.queue("interactive"), {"a": now_ms - 1000, "b": now_ms - 500, "c": now_ms + 60_000})
    health = ModelHealth(redis, settings=BreakerSettings(failure_threshold=1))
    await health.record(Attempt("openai/gpt-4o", (), 503, "server_error", "down", 5))
    line = BudgetState(f"{KEYS.prefix}budget:daily:global:2099-01-01", "daily", "global", "2099-01-01",
                       0, 0, usd_to_nano("5"))
    await redis.hset(line.key, mapping={"spent": usd_to_nano("1.25"), "reserved": 0})
    reader = GaugeReader(redis, KEYS, ["interactive", "batch"], health,
                         models=lambda: ["openai/gpt-4o", "openai/gpt-4o-mini"], budgets=lambda: [line])
    metrics = PrometheusMetrics(CATALOG_NOW, process=False)
    async with _served(metrics, slots=lambda: (3, 8), reader=reader) as server:
        async def read() -> Samples | None:
            samples = await _scrape(server)
            depth = ("routeq_queue_depth", frozenset({("queue", "interactive")}))
            return samples if depth in samples else None

        samples = await _wait(read)
    assert _series(samples, "routeq_queue_depth", "queue") == {("interactive",): 3}
    assert _series(samples, "routeq_queue_ready", "queue") == {("interactive",): 2}
    assert _series(samples, "routeq_slots_used") == {(): 3} and _series(samples, "routeq_slots") == {(): 8}
    states = {k[0]: v for k, v in _series(samples, "routeq_breaker_state", "model").items()}
    assert states == {"openai/gpt-4o": 2}  # gpt-4o-mini is closed: 0, left out by _series
    assert ("routeq_breaker_state", frozenset({("model", "openai/gpt-4o-mini")})) in samples
    assert _series(samples, "routeq_budget_spent_usd", "budget", "scope") == {("daily", "global"): 1.25}
    assert _series(samples, "routeq_budget_limit_usd", "budget") == {("daily",): 5.0}


async def test_a_scrape_never_waits_on_a_slow_redis(redis: Redis) -> None:
    class Stuck(GaugeReader):
        calls = 0

        async def read(self) -> GaugeSnapshot:
            Stuck.calls += 1
            if Stuck.calls == 1:
                return GaugeSnapshot(read_at=time.time())
            await asyncio.Event().wait()  # Redis hangs from now on
            raise AssertionError("unreachable")

    metrics = PrometheusMetrics(CATALOG_NOW, process=False)
    fast = MetricsSettings(port=0, refresh_s=0.5)
    server = await start_metrics(metrics, fast, slots=lambda: (1, 2),
                                 reader=Stuck(redis, KEYS, ["interactive"], ModelHealth(redis)))
    try:
        await _wait(lambda: Stuck.calls >= 2 or None)
        started = time.monotonic()
        samples = await _scrape(server)
        assert time.monotonic() - started < 1.0
        assert _series(samples, "routeq_slots_used") == {(): 1}
        assert ("routeq_shared_state_age_seconds", frozenset()) in samples
    finally:
        await server.aclose()


# -- settings and serving ----------------------------------------------------------------------------


def test_metrics_are_off_unless_a_port_is_set() -> None:
    assert metrics_from_env(CATALOG_NOW, {}) is NO_METRICS
    assert isinstance(metrics_from_env(CATALOG_NOW, {"ROUTEQ_METRICS_PORT": "9464"}), PrometheusMetrics)
    settings = MetricsSettings.from_env({"ROUTEQ_METRICS_PORT": "9464"})
    assert (settings.port, settings.host) == (9464, "127.0.0.1")
    for bad in ("x", "-1", "70000"):
        with pytest.raises(SettingsError, match="ROUTEQ_METRICS_PORT"):
            MetricsSettings.from_env({"ROUTEQ_METRICS_PORT": bad})


async def test_no_metrics_serves_nothing_and_a_taken_port_is_one_clear_error() -> None:
    off = await start_metrics(NO_METRICS, ON, slots=lambda: (0, 0))
    assert off.port is None
    await off.aclose()
    metrics = PrometheusMetrics(CATALOG_NOW, process=False)
    async with _served(metrics) as first:
        with pytest.raises(MetricsError, match=f"127.0.0.1:{first.port}"):
            await start_metrics(PrometheusMetrics(CATALOG_NOW, process=False),
                                MetricsSettings(port=first.port), slots=lambda: (0, 0))


def test_recording_a_job_costs_microseconds() -> None:
    metrics = PrometheusMetrics(CATALOG_NOW, process=False)
    result = Result.model_validate({
        "job_id": "j", "status": "succeeded",
        "routing": {"rule": "code-tasks", "rules_version": "sha256:x", "model": "openai/gpt-4o",
                    "chain": ["openai/gpt-4o", "anthropic/claude-3.5-sonnet"], "max_tokens": 100,
                    "model_served": "anthropic/claude-3.5-sonnet"},
        "usage": {"prompt_tokens": 100, "completion_tokens": 50, "cost_usd": str(Decimal("0.00123"))},
        "timing": {"started_at": "x", "finished_at": "x", "queue_ms": 12, "upstream_ms": 300,
                   "total_ms": 320},
    })
    attempt = Attempt("openai/gpt-4o", (), 502, "server_error", "down", 40)
    n = 5000
    started = time.process_time()
    for _ in range(n):
        metrics.attempt(attempt)
        metrics.job_finished("interactive", result, True)
    per_job_us = (time.process_time() - started) / n * 1e6
    assert per_job_us < 200, per_job_us  # ~10 us measured; the worker's whole budget is 1000 us


async def _wait(predicate: Any, timeout: float = 10.0) -> Any:
    from tests.support.waiting import eventually

    return await eventually(predicate, timeout=timeout, interval=0.05, what="the metrics to show it")
