"""A web backend's interactive job is not stuck behind a big batch.

The worker serves ``interactive`` before ``batch`` and keeps ``ROUTEQ_INTERACTIVE_RESERVE`` slots
that batch jobs cannot take, so an interactive job starts as soon as it is enqueued even while a
batch saturates every other slot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from producer_client import Client
from tests.support import emu
from tests.support.procs import Emulator, WorkerProcess

pytestmark = pytest.mark.integration

LATENCY_MS = 200
BATCH = 500
PRO = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0}


@pytest.fixture()
def small_worker(redis_url: str, clean_emulator: Emulator) -> Iterator[WorkerProcess]:
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": LATENCY_MS}}})
    proc = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS="20",
                         ROUTEQ_INTERACTIVE_RESERVE="5")
    yield proc
    proc.kill()


async def test_interactive_job_overtakes_a_running_batch(small_worker: WorkerProcess, client: Client) -> None:
    handles = await client.submit_many(
        [{"prompt": f"batch item {i}", "context": PRO} for i in range(BATCH)], queue="batch"
    )
    ids = [h.job_id for h in handles]
    # Let the batch fill its 15 slots and run for a while.
    got = 0
    async for _ in client.as_completed(ids, batch_id=handles[0].batch_id, timeout=30):
        got += 1
        if got == 30:
            break

    t0 = time.monotonic()
    job_id = await client.submit(prompt="a user is waiting", context=PRO, queue="interactive")
    res = await client.result(job_id, timeout=10)
    waited = time.monotonic() - t0
    batch_left = await client.queue_depth("batch")

    assert res.ok
    assert waited < 1.0, f"interactive job took {waited:.2f}s behind the batch"
    assert res.timing.queue_ms is not None and res.timing.queue_ms < 500
    # The batch was still far from done: ~15 slots x 5 jobs/s each would need about 6 s.
    assert batch_left > BATCH / 2
    done = sum(r is not None for r in await client.get_many(ids))
    assert done < BATCH / 2


async def test_reserved_slots_start_interactive_work_without_waiting_for_a_free_slot(
    redis_url: str, clean_emulator: Emulator, client: Client
) -> None:
    # Batch jobs (code tasks) go to a slow model, the interactive one (chat) to a fast one. The 15
    # batch slots start together and stay busy for 1.5 s: without the reserve the interactive
    # job would wait for one of them; with it, it starts at once.
    emu.set_faults(clean_emulator.base_url, {"models": {"anthropic/claude-3.5-sonnet": {"latency_ms": 1500}}})
    proc = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS="20",
                         ROUTEQ_INTERACTIVE_RESERVE="5")
    try:
        await client.submit_many(
            [{"prompt": f"def f{i}(): pass", "context": {**PRO, "task_type": "code"}} for i in range(60)],
            queue="batch",
        )
        for _ in range(500):  # up to 5 s for the worker to start them
            if len(await client.redis.keys("arq:in-progress:*")) >= 15:
                break
            await asyncio.sleep(0.01)
        assert len(await client.redis.keys("arq:in-progress:*")) == 15  # the batch's share, no more
        job_id = await client.submit(prompt="hello", context=PRO, queue="interactive")
        res = await client.result(job_id, timeout=10)
        assert res.ok and res.routing is not None and res.routing.model_served == "openai/gpt-4o-mini"
        # Without the reserve it waits ~1.5 s for a batch slot (measured: 1408 ms; with it: 136 ms).
        assert res.timing.queue_ms is not None and res.timing.queue_ms < 700
    finally:
        proc.kill()
