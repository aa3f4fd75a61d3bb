"""Batch submission on real parts: redis-server, the emulator over HTTP, a worker process."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest

from producer_client import Client, SyncClient
from producer_client.keys import Keys
from tests.support import emu
from tests.support.procs import Emulator, WorkerProcess

pytestmark = pytest.mark.integration

PRO = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0}


def specs(n: int, prefix: str = "job") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "prompt": f"question {i}", "context": PRO, "metadata": {"i": i}}
            for i in range(n)]


async def test_same_ids_twice_run_once_each(
    worker: WorkerProcess, client: Client, clean_emulator: Emulator
) -> None:
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 100}}})
    first, second = await asyncio.gather(
        client.submit_many(specs(60), queue="batch", chunk=16),
        client.submit_many(specs(60), queue="batch", chunk=16),
    )
    assert [a.added != b.added for a, b in zip(first, second, strict=True)] == [True] * 60
    results = await client.wait_all([h.job_id for h in first], batch_id=first[0].batch_id, timeout=30)
    assert all(r.ok for r in results)
    late = await client.submit_many(specs(60), queue="batch")  # after they finished
    assert not any(h.added for h in late)
    await asyncio.sleep(0.3)
    assert emu.stats(clean_emulator.base_url)["requests_total"] == 60
    decisions = await client.redis.xrange(Keys().decisions)
    assert len(decisions) == 60


async def test_as_completed_yields_each_result_once_as_jobs_finish(
    worker: WorkerProcess, client: Client, clean_emulator: Emulator
) -> None:
    # Random latencies make jobs finish out of submission order.
    emu.set_faults(clean_emulator.base_url,
                   {"seed": 5, "models": {"*": {"latency_ms": 20, "latency_jitter_ms": 600}}})
    handles = await client.submit_many(specs(120), queue="batch")
    arrived: list[tuple[float, str]] = []
    async for res in client.as_completed([h.job_id for h in handles], batch_id=handles[0].batch_id,
                                         timeout=30):
        arrived.append((time.monotonic(), res.job_id))
        assert res.ok and res.metadata == {"i": int(res.job_id.split("-")[1])}
    ids = [job_id for _, job_id in arrived]
    assert sorted(ids) == sorted(h.job_id for h in handles) and len(ids) == 120
    assert ids != [h.job_id for h in handles]  # finish order, not submission order
    # Streamed: the first result came well before the last, not all at the end.
    assert arrived[-1][0] - arrived[0][0] > 0.3
    # In finish order: each arrival is the job that finished next (to the worker's ms clock,
    # give or take one batch of wake-ups).
    finished = {r.job_id: r.timing.finished_at for r in await client.wait_all(ids, timeout=1)}
    stamps = [finished[j] for j in ids]
    late = sum(1 for a, b in itertools.pairwise(stamps) if b < a)
    assert late <= 10


async def test_wait_all_keeps_the_order_asked(
    worker: WorkerProcess, client: Client, clean_emulator: Emulator
) -> None:
    emu.set_faults(clean_emulator.base_url,
                   {"seed": 9, "models": {"*": {"latency_ms": 10, "latency_jitter_ms": 200}}})
    handles = await client.submit_many(specs(40))  # interactive, no batch list used below
    ids = [h.job_id for h in handles][::-1]
    results = await client.wait_all(ids, timeout=30)
    assert [r.job_id for r in results] == ids


def test_sync_client_from_plain_threads(worker: WorkerProcess, redis_url: str) -> None:
    answers: dict[int, str] = {}
    errors: list[BaseException] = []
    with SyncClient.from_url(redis_url) as sync:

        def handle_request(n: int) -> None:  # what a WSGI view does
            try:
                job_id = sync.submit(prompt=f"request {n}", context=PRO)
                answers[n] = sync.result(job_id, timeout=20).status
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=handle_request, args=(n,)) for n in range(10)]
        for t in threads:
            t.start()
        handles = sync.submit_many(specs(20, "sync"), queue="batch")
        streamed = [r.job_id for r in sync.as_completed([h.job_id for h in handles],
                                                        batch_id=handles[0].batch_id, timeout=20)]
        for t in threads:
            t.join(30)
    assert errors == []
    assert answers == {n: "succeeded" for n in range(10)}
    assert sorted(streamed) == sorted(h.job_id for h in handles)
