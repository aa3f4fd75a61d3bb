"""Shared fixtures. Integration fixtures start their own redis-server and emulator on loopback."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import fakeredis
import pytest
from redis.asyncio import Redis

from tests.support.procs import Emulator, RedisServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that starts a real redis-server carries the ``redis_server`` marker, so runs
    under libfaketime (which cannot start redis-server) can deselect them with
    ``-m "not redis_server"``; without redis-server installed they are skipped."""
    missing = shutil.which("redis-server") is None
    skip = pytest.mark.skip(reason="redis-server not installed") if missing else None
    for item in items:
        if "integration" in item.keywords or "redis_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis_server)
        if skip is not None and "redis_server" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the session; tests that restart Redis make their own."""
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    if not redis_server.ping():
        redis_server.start()
    redis_server.client().flushall()
    yield redis_server.url


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.redis_server)])
async def script_redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    """An empty Redis for Lua script tests: fakeredis, then the private redis-server. Scripts must
    behave the same on both (fakeredis runs our Lua in lupa, Redis in its own interpreter)."""
    if request.param == "fake":
        client: Redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        if not server.ping():
            server.start()
        client = Redis(host="127.0.0.1", port=server.port, max_connections=64)
        await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    emu = Emulator()
    yield emu
    emu.kill()


@pytest.fixture()
async def emulator_reset(emulator: Emulator) -> AsyncIterator[Emulator]:
    import httpx

    async with httpx.AsyncClient() as http:
        await http.post(emulator.base_url.replace("/api/v1", "") + "/_emulator/reset")
    yield emulator
