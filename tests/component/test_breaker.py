"""ModelHealth on fakeredis (fake clock, several "workers" sharing one server) and on a real server.

Each ModelHealth instance stands for one worker process; they share state only through Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import fakeredis
import httpx
import orjson
import pytest
from redis.asyncio import Redis

from producer_client.keys import Keys
from tests.support.procs import RedisServer, free_port
from worker.health import BreakerSettings, ModelHealth
from worker.openrouter import Attempt, ChatRequest, OpenRouterClient, OpenRouterSettings, UpstreamError

A, B, C = "openai/gpt-4o", "anthropic/claude-3.5-sonnet", "meta-llama/llama-3.1-70b"
SETTINGS = BreakerSettings(failure_threshold=5, cooldown_s=30, max_cooldown_s=100, probe_lease_s=10)
Workers = Callable[[], ModelHealth]


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture()
async def workers(server: fakeredis.FakeServer, clock: Clock) -> AsyncIterator[Workers]:
    """A factory of workers: each gets its own connection to the shared fake server."""
    clients: list[Redis] = []

    def make() -> ModelHealth:
        client = fakeredis.FakeAsyncRedis(server=server)
        clients.append(client)
        return ModelHealth(client, settings=SETTINGS, clock=clock)

    yield make
    for c in clients:
        await c.aclose()


def failure(
    *models: str, status: int = 502, error_type: str = "server_error", retry_after_s: float | None = None
) -> Attempt:
    return Attempt(
        model=models[0], models=models[1:], status=status, error_type=error_type, error="upstream broke",
        latency_ms=10, retry_after_s=retry_after_s, failed_models=models,
    )


def success(model: str, *, before: tuple[str, ...] = ()) -> Attempt:
    return Attempt(
        model=(before or (model,))[0], models=(*before[1:], model) if before else (), status=200,
        error_type=None, error=None, latency_ms=10, served_model=model, failed_models=before,
    )


async def check(health: ModelHealth, models: list[str] | tuple[str, ...]) -> dict[str, str | None]:
    """Per model: None if it may be called (possibly as the half-open probe), else why not."""
    _, circuits = await health.gate(models, account=False)
    return {m: c.reason for m, c in circuits.items()}


async def fail_n(health: ModelHealth, n: int, *models: str, **kw: Any) -> None:
    for _ in range(n):
        await health.record(failure(*models, **kw))


# --- closed → open ---------------------------------------------------------------------------


async def test_opens_after_threshold_consecutive_failures_and_says_why(workers: Workers) -> None:
    w = workers()
    await fail_n(w, 4, A)
    assert await check(w, [A, B]) == {A: None, B: None}
    await w.record(failure(A))
    reasons = await check(w, [A, B])
    assert reasons[B] is None
    assert reasons[A] == "circuit open (5 consecutive failures, last: server_error; retry in 30s)"


async def test_a_success_resets_the_consecutive_count(workers: Workers) -> None:
    w = workers()
    await fail_n(w, 4, A)
    await w.record(success(A))
    await fail_n(w, 4, A)
    assert (await check(w, [A]))[A] is None
    await w.record(failure(A))
    assert (await check(w, [A]))[A] is not None


async def test_two_workers_add_up_to_one_count(workers: Workers) -> None:
    w1, w2 = workers(), workers()
    await fail_n(w1, 3, A)
    await fail_n(w2, 2, A)
    assert (await check(w1, [A]))[A] is not None
    assert (await check(w2, [A]))[A] is not None


async def test_stays_open_for_the_cooldown(workers: Workers, clock: Clock) -> None:
    w = workers()
    await fail_n(w, 5, A)
    clock.t += 29.5
    why = "circuit open (5 consecutive failures, last: server_error; retry in 1s)"
    assert (await check(w, [A]))[A] == why


async def test_failures_landing_while_open_do_not_extend_it(workers: Workers, clock: Clock) -> None:
    w = workers()
    await fail_n(w, 5, A)
    clock.t += 20
    await fail_n(w, 3, A)  # calls that started before the circuit opened
    clock.t += 10
    assert (await check(w, [A]))[A] is None  # half-open on time: this worker probes


async def test_a_long_retry_after_stretches_the_opening_up_to_the_cap(
    workers: Workers, clock: Clock
) -> None:
    w = workers()
    await fail_n(w, 5, A, status=429, error_type="rate_limited", retry_after_s=60)
    await fail_n(w, 5, B, status=429, error_type="rate_limited", retry_after_s=1000)
    clock.t += 59
    reasons = await check(w, [A, B])
    assert "retry in 1s" in str(reasons[A])
    clock.t += 1
    reasons = await check(w, [A, B])
    assert reasons[A] is None
    assert "retry in 40s" in str(reasons[B])  # capped at max_cooldown_s=100


# --- half-open --------------------------------------------------------------------------------


async def test_after_the_cooldown_exactly_one_worker_probes(workers: Workers, clock: Clock) -> None:
    w1, w2 = workers(), workers()
    await fail_n(w1, 5, A)
    clock.t += 30
    assert (await check(w1, [A]))[A] is None
    reason = (await check(w2, [A]))[A]
    assert reason == "circuit half-open: another worker is probing it (next probe in 10s)"
    assert (await check(w1, [A]))[A] is not None  # the lease is per probe, not per worker


async def test_only_one_of_many_concurrent_checks_gets_the_probe(
    workers: Workers, clock: Clock
) -> None:
    fleet = [workers() for _ in range(20)]
    await fail_n(fleet[0], 5, A)
    clock.t += 31
    results = await asyncio.gather(*(check(w, [B, A, C]) for w in fleet for _ in range(5)))
    assert sum(r[A] is None for r in results) == 1
    assert all(r[B] is None and r[C] is None for r in results)


async def test_a_successful_probe_closes_the_circuit_for_everyone(
    workers: Workers, server: fakeredis.FakeServer, clock: Clock
) -> None:
    w1, w2 = workers(), workers()
    await fail_n(w1, 5, A)
    clock.t += 30
    assert (await check(w1, [A]))[A] is None
    await w1.record(success(A))
    assert await check(w2, [A]) == {A: None}
    assert await w2.status() == []  # a closed, healthy circuit leaves no key behind
    await fail_n(w2, 4, A)
    assert (await check(w1, [A]))[A] is None  # the count started again from zero


async def test_a_failed_probe_reopens_with_a_doubled_cooldown_up_to_the_cap(
    workers: Workers, clock: Clock
) -> None:
    w = workers()
    await fail_n(w, 5, A)
    waits = []
    for _ in range(4):
        clock.t += 1000
        assert (await check(w, [A]))[A] is None  # this worker is the probe
        await w.record(failure(A))
        (st,) = await w.status()
        assert st.state == "open"
        waits.append(st.cooldown_s)
    assert waits == [60.0, 100.0, 100.0, 100.0]
    clock.t += 99
    assert (await check(w, [A]))[A] is not None


async def test_a_lapsed_probe_lease_lets_another_worker_probe(
    workers: Workers, clock: Clock
) -> None:
    w1, w2 = workers(), workers()
    await fail_n(w1, 5, A)
    clock.t += 30
    assert (await check(w1, [A]))[A] is None  # w1 claims the probe, then never reports (crashed)
    clock.t += 9.9
    assert (await check(w2, [A]))[A] is not None
    clock.t += 0.1
    assert (await check(w2, [A]))[A] is None


# --- attribution through the real client ------------------------------------------------------


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": "gen-1", "model": model, "provider": "P",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "cost": 0.000001},
    }


async def test_native_fallback_blames_only_the_models_openrouter_abandoned(
    workers: Workers,
) -> None:
    """A window [A, B, C] served by B after A failed: A's count grows, B and C stay clean."""
    health = workers()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_completion(B))

    async def no_sleep(_: float) -> None:
        return None

    settings = OpenRouterSettings(base_url="http://127.0.0.1:9/api/v1", api_key="k", max_retries=0)
    async with OpenRouterClient(settings, transport=httpx.MockTransport(handler), sleep=no_sleep) as client:
        request = ChatRequest(messages=[{"role": "user", "content": "x"}], chain=(A, B, C), max_tokens=8)
        for _ in range(5):
            usable = tuple(m for m, why in (await check(health, request.chain)).items() if not why)
            done = await client.complete(replace(request, chain=usable), on_attempt=health.record)
            assert done.model_served == B
    reasons = await check(health, [A, B, C])
    assert reasons[A] is not None and reasons[B] is None and reasons[C] is None
    (st,) = await health.status()
    assert (st.model, st.state, st.last_error) == (A, "open", "fallback")


async def test_previous_errors_narrow_the_blame_and_refusals_are_ignored(
    workers: Workers,
) -> None:
    health = workers()
    bodies = [
        (502, {"error": {"code": 502, "message": "Provider returned error",
                         "metadata": {"previous_errors": [{"model": A, "code": 502}]}}}),
        (400, {"error": {"code": 400, "message": "Invalid request parameters"}}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        status, body = bodies[0]
        return httpx.Response(status, json=body)

    async def no_sleep(_: float) -> None:
        return None

    settings = OpenRouterSettings(base_url="http://127.0.0.1:9/api/v1", api_key="k", max_retries=0)
    async with OpenRouterClient(settings, transport=httpx.MockTransport(handler), sleep=no_sleep) as client:
        request = ChatRequest(messages=[{"role": "user", "content": "x"}], chain=(A, B), max_tokens=8)
        for _ in range(5):
            with pytest.raises(UpstreamError):
                await client.complete(request, on_attempt=health.record)
        bodies.pop(0)
        for _ in range(5):  # invalid requests: the models are not to blame
            with pytest.raises(UpstreamError):
                await client.complete(request, on_attempt=health.record)
    statuses = {st.model: st for st in await health.status()}
    assert set(statuses) == {A}
    assert statuses[A].state == "open" and statuses[A].consecutive_failures == 5


# --- the account-wide stop --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "cooldown"), [(402, "insufficient_credits", 60.0), (401, "auth", 300.0)]
)
async def test_401_and_402_block_every_worker_for_their_cooldown(
    workers: Workers, clock: Clock, status: int, error_type: str, cooldown: float
) -> None:
    w1, w2 = workers(), workers()
    assert await w2.account_block() is None
    await w1.record(failure(A, B, status=status, error_type=error_type))
    block = await w2.account_block()
    assert block is not None
    assert block.error_type == error_type and block.until == clock.t + cooldown
    assert f"HTTP {status}" in block.message and "upstream broke" in block.message
    assert await check(w2, [A, B]) == {A: None, B: None}  # the models themselves are not blamed
    assert await w2.status() == []
    clock.t += cooldown - 0.01
    assert await w2.account_block() is not None
    clock.t += 0.01
    assert await w2.account_block() is None


async def test_the_account_block_key_expires_in_redis_too(workers: Workers) -> None:
    w = workers()
    await w.record(failure(A, status=402, error_type="insufficient_credits"))
    pttl = await w.redis.pttl(w.account_key)
    assert 59_000 < pttl <= 60_000


# --- status, and Redis trouble -----------------------------------------------------------------


async def test_status_reports_each_circuit_and_skips_the_account_key(
    workers: Workers, clock: Clock
) -> None:
    w = workers()
    await fail_n(w, 5, A)
    await fail_n(w, 2, B, status=504, error_type="timeout")
    await fail_n(w, 5, C)
    await w.record(failure(C, status=401, error_type="auth"))
    clock.t += 30
    await check(w, [C])  # claims C's probe
    got = {st.model: st for st in await w.status()}
    assert set(got) == {A, B, C}
    assert (got[A].state, got[A].consecutive_failures) == ("half_open", 5)
    assert got[A].probe_until is None
    assert (got[B].state, got[B].consecutive_failures, got[B].last_error) == ("closed", 2, "timeout")
    assert got[C].state == "half_open" and got[C].probe_until == clock.t + 10
    clock.t -= 1
    assert {st.model: st.state for st in await w.status()}[A] == "open"


async def test_an_unreachable_redis_makes_every_model_usable_and_drops_outcomes() -> None:
    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    health = ModelHealth(dead)
    try:
        assert await check(health, [A, B]) == {A: None, B: None}
        await health.record(failure(A))
        await health.record(failure(A, status=402, error_type="insufficient_credits"))
        assert await health.account_block() is None
    finally:
        await dead.aclose()


async def test_a_malformed_account_key_is_ignored(workers: Workers) -> None:
    w = workers()
    await w.redis.set(w.account_key, orjson.dumps({"oops": 1}))
    assert await w.account_block() is None


# --- the same Lua on a real redis-server -------------------------------------------------------


@pytest.fixture()
async def real(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=redis_server.port)
    await client.flushall()
    yield client
    await client.aclose()


async def test_on_a_real_server_each_operation_is_one_call_or_none(real: Redis, clock: Clock) -> None:
    fleet = [ModelHealth(real, settings=SETTINGS, clock=clock) for _ in range(10)]
    w = fleet[0]
    assert (await check(w, [A, B]))[A] is None
    await real.config_resetstat()
    await w.record(success(A))  # a success on a model seen clean costs no round trip
    assert await _calls(real) == {}
    await check(w, [A, B])
    assert await _calls(real) == {"evalsha": 1}
    await fail_n(w, 5, A)
    assert (await check(fleet[1], [A]))[A] is not None
    clock.t += 30
    results = await asyncio.gather(*(check(h, [A, B]) for h in fleet for _ in range(10)))
    assert sum(r[A] is None for r in results) == 1
    await w.record(success(A))
    assert await check(fleet[5], [A, B]) == {A: None, B: None}
    assert await real.exists(w.key(A)) == 0


async def _calls(redis: Redis) -> dict[str, int]:
    """Client commands since CONFIG RESETSTAT (commandstats also counts those run inside scripts)."""
    stats = await redis.info("commandstats")
    inside_scripts = {"hmget", "hset", "del", "pexpire", "info", "config|resetstat"}
    return {
        name: int(v["calls"])
        for k, v in stats.items()
        if (name := k.removeprefix("cmdstat_")) not in inside_scripts
    }


async def test_circuits_and_blocks_are_listed_from_their_indexes_and_cleared_with_them(
    workers: Workers, clock: Clock
) -> None:
    w = workers()
    keys = Keys()
    await fail_n(w, 2, A)
    await fail_n(w, 1, B)
    assert await w.redis.zcard(keys.circuits) == 2
    await w.record(success(B))  # a success deletes the hash and its index entry
    assert [st.model for st in await w.status()] == [A]
    assert await w.redis.zrange(keys.circuits, 0, -1) == [w.key(A).encode()]
    await w.redis.hset(w.key("rogue/model"), mapping={"state": "open"})  # type: ignore[misc]
    assert [st.model for st in await w.status()] == [A]  # listed from the index: no SCAN
    await w.record(failure(A, status=401, error_type="auth"))
    blocks = await w.blocks()
    assert list(blocks) == ["no-key"] and blocks["no-key"].error_type == "auth"
    assert await w.clear("account") == 1
    assert await w.blocks() == {} and await w.redis.zcard(keys.account_blocks) == 0
    assert await w.clear(A) == 1 and await w.status() == []
    assert await w.redis.zcard(keys.circuits) == 0
    # Entries of hashes that expired over an hour ago leave the index at the next listing.
    await w.redis.zadd(keys.circuits, {w.key(C): int((clock.t - 7200) * 1000)})
    assert await w.status() == [] and await w.redis.zcard(keys.circuits) == 0
