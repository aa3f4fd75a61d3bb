"""Fixtures shared by component tests: an in-memory Redis (fakeredis with Lua) and the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
from redis.asyncio import Redis

from worker.emulator.runner import RunningEmulator, serve_emulator


@pytest.fixture()
async def redis() -> AsyncIterator[Redis]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    yield client
    await client.aclose()


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with serve_emulator() as running:
        yield running
