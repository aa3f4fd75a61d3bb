from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from producer_client.client import Client
from tests.support import emu
from tests.support.procs import Emulator, WorkerProcess

pytestmark = pytest.mark.integration


@pytest.fixture()
def clean_emulator(emulator: Emulator) -> Iterator[Emulator]:
    emu.reset(emulator.base_url)
    emu.set_faults(emulator.base_url, {})
    yield emulator
    emu.set_faults(emulator.base_url, {})


@pytest.fixture()
def worker(redis_url: str, clean_emulator: Emulator) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS="200",
                         OPENROUTER_MAX_RETRIES="2")
    yield proc
    proc.kill()


@pytest.fixture()
async def client(redis_url: str) -> AsyncIterator[Client]:
    c = Client.from_url(redis_url)
    yield c
    await c.close()
