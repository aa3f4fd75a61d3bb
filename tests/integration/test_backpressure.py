"""Backpressure against a real worker: a capped queue refuses or makes the producer wait for room."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from producer_client import Client, QueueFull
from tests.support import emu
from tests.support.procs import Emulator, WorkerProcess

pytestmark = pytest.mark.integration

DEPTH = 10
SLOTS = 5
LATENCY_MS = 300
PRO = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0}


@pytest.fixture()
def slow_worker(redis_url: str, clean_emulator: Emulator) -> Iterator[WorkerProcess]:
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": LATENCY_MS}}})
    proc = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS=str(SLOTS),
                         ROUTEQ_INTERACTIVE_RESERVE="0")
    yield proc
    proc.kill()


@pytest.fixture()
async def capped(redis_url: str) -> AsyncIterator[Client]:
    client = Client.from_url(redis_url, max_queue_depth=DEPTH, full_wait_s=10)
    yield client
    await client.close()


def specs(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"id": f"bp-{i}", "prompt": f"q{i}", "context": PRO} for i in range(start, start + n)]


@pytest.mark.usefixtures("slow_worker")
async def test_a_full_queue_refuses_then_accepts_once_drained(capped: Client) -> None:
    handles = await capped.submit_many(specs(DEPTH))
    with pytest.raises(QueueFull, match=f"maximum depth {DEPTH}"):
        await capped.submit(prompt="one too many", context=PRO, job_id="extra")
    assert await capped.get("extra") is None
    await capped.wait_all([h.job_id for h in handles], batch_id=handles[0].batch_id, timeout=20)
    assert await capped.submit(prompt="room again", context=PRO, job_id="extra") == "extra"
    assert (await capped.result("extra", timeout=10)).ok


@pytest.mark.usefixtures("slow_worker")
async def test_wait_paces_the_producer_to_the_worker(capped: Client) -> None:
    depths: list[int] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            depths.append(await capped.queue_depth())
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    t0 = time.monotonic()
    handles = await capped.submit_many(specs(40), on_full="wait", chunk=8)
    took = time.monotonic() - t0
    results = await capped.wait_all([h.job_id for h in handles], batch_id=handles[0].batch_id, timeout=30)
    stop.set()
    await sampler
    assert all(h.added for h in handles) and all(r.ok for r in results)
    assert max(depths) <= DEPTH
    # 30 jobs had to wait for room; the worker frees SLOTS slots every LATENCY_MS.
    assert took >= (40 - DEPTH) / SLOTS * LATENCY_MS / 1000 * 0.8
