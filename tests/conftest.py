"""Shared fixtures. Integration fixtures start their own redis-server and emulator on loopback."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.procs import Emulator, RedisServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("redis-server") is None:
        skip = pytest.mark.skip(reason="redis-server not installed")
        for item in items:
            if "integration" in item.keywords:
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
