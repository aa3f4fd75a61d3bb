"""A web backend's interactive job is not stuck behind a big batch.

The worker serves ``interactive`` before ``batch`` and keeps ``ROUTEQ_INTERACTIVE_RESERVE`` slots
that batch jobs cannot take, so an interactive job starts as soon as it is enqueued even while a
batch saturates every other slot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from datetime import datetime

import pytest

from producer_client import Client
from tests.support import emu
from tests.support.faults import in_progress
from tests.support.procs import Emulator, WorkerProcess
from tests.support.waiting import eventually

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
    async for _ in client.as_completed(ids, batch_id=handles[0].batch_id, timeout=60):
        got += 1
        if got == 30:
            break

    job_id = await client.submit(prompt="a user is waiting", context=PRO, queue="interactive")
    res = await client.result(job_id, timeout=30)
    assert res.ok
    # Ordering, not wall-clock time (the worker stamps every job with the same clock): count the
    # batch jobs that went before the interactive one while it waited. Behind the batch it would
    # wait for the ~470 still queued; ahead of it, for at most a claim or two of the batch's 15
    # slots (5 jobs/s each), whatever the machine's speed.
    enqueued, started, finished = (_ts(res.timing.enqueued_at), _ts(res.timing.started_at),
                                   _ts(res.timing.finished_at))
    batch = [r.timing for r in await client.get_many(ids) if r is not None]
    started_meanwhile = sum(enqueued <= _ts(t.started_at) <= started for t in batch)
    finished_meanwhile = sum(enqueued <= _ts(t.finished_at) <= finished for t in batch)
    assert started_meanwhile <= 2 * 15, f"{started_meanwhile} batch jobs started while it waited"
    assert finished_meanwhile <= 4 * 15, f"{finished_meanwhile} batch jobs finished while it waited"
    # The batch was still far from done when it finished: it overtook a running batch.
    done_before = sum(_ts(t.finished_at) <= finished for t in batch)
    assert done_before < BATCH / 2


async def test_reserved_slots_start_interactive_work_without_waiting_for_a_free_slot(
    redis_url: str, clean_emulator: Emulator, client: Client
) -> None:
    # Batch jobs (code tasks) go to a slow model, the interactive one (chat) to a fast one. The 15
    # batch slots start together and stay busy for 3 s: without the reserve the interactive job
    # would wait for one of them to finish; with it, it starts while all 15 are still running.
    emu.set_faults(clean_emulator.base_url, {"models": {"anthropic/claude-3.5-sonnet": {"latency_ms": 3000}}})
    proc = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS="20",
                         ROUTEQ_INTERACTIVE_RESERVE="5")
    try:
        handles = await client.submit_many(
            [{"prompt": f"def f{i}(): pass", "context": {**PRO, "task_type": "code"}} for i in range(60)],
            queue="batch",
        )
        batch_ids = [h.job_id for h in handles]
        await eventually(lambda: _at_least(in_progress(client.redis), 15), timeout=30,
                         what="the worker starting 15 batch jobs")
        job_id = await client.submit(prompt="hello", context=PRO, queue="interactive")
        res = await client.result(job_id, timeout=30)
        # The poll that claimed the interactive job is where a worker ignoring the reserve would
        # have filled it with batch jobs. None of the batch jobs can have finished yet (see below),
        # so this is the batch's 15, plus the interactive job if its claim is not cleared yet.
        running = await in_progress(client.redis)
        batch_done = [r.timing for r in await client.get_many(batch_ids) if r is not None]
    finally:
        proc.kill()
    assert res.ok and res.routing is not None and res.routing.model_served == "openai/gpt-4o-mini"
    assert running <= 16, f"{running} jobs running: the batch took reserved slots"
    # Without the reserve it starts only once a batch job has finished and freed a slot (measured
    # 1.4 s of queueing with 1.5 s batch calls); with it, before any batch job finished.
    started = _ts(res.timing.started_at)
    assert [t.finished_at for t in batch_done if _ts(t.finished_at) <= started] == []


async def _at_least(count: Awaitable[int], n: int) -> bool:
    return await count >= n


def _ts(stamp: str | None) -> float:
    """A result's ISO timestamp (the worker's or producer's wall clock, same host) as epoch seconds."""
    assert stamp is not None
    return datetime.fromisoformat(stamp).timestamp()
