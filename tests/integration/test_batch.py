"""Batch submission on real parts: redis-server, the emulator over HTTP, a worker process."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import pytest

from producer_client import Client, SyncClient
from producer_client.keys import Keys
from tests.support import emu
from tests.support.procs import Emulator, WorkerProcess
from tests.support.waiting import eventually, nothing_pending

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
    # Had the late submit enqueued them after all, they would stay queued or running until those
    # runs ended: an idle queue proves any second run is over, and its calls counted.
    await eventually(lambda: nothing_pending(client), timeout=20, what="nothing queued or running")
    assert emu.stats(clean_emulator.base_url)["requests_total"] == 60
    decisions = await client.redis.xrange(Keys().decisions)
    assert len(decisions) == 60


async def test_as_completed_yields_each_result_once_as_jobs_finish(
    worker: WorkerProcess, client: Client, clean_emulator: Emulator
) -> None:
    # Random latencies spread over 1.5 s make jobs finish out of submission order.
    emu.set_faults(clean_emulator.base_url,
                   {"seed": 5, "models": {"*": {"latency_ms": 300, "latency_jitter_ms": 1500}}})
    handles = await client.submit_many(specs(120), queue="batch")
    submitted = [h.job_id for h in handles]
    ids: list[str] = []
    unfinished_at_first = 0
    async for res in client.as_completed(submitted, batch_id=handles[0].batch_id, timeout=30):
        if not ids:
            unfinished_at_first = sum(r is None for r in await client.get_many(submitted))
        ids.append(res.job_id)
        assert res.ok and res.metadata == {"i": int(res.job_id.split("-")[1])}
    assert sorted(ids) == sorted(submitted) and len(ids) == 120
    assert ids != submitted  # finish order, not submission order
    # Streamed: the first result was handed over while most jobs were still running.
    assert unfinished_at_first > len(submitted) // 2
    # In finish order: the worker writes each result and its decision stream entry in one atomic
    # script, so the stream's order is the order jobs finished. Any other order (submission,
    # random) would step back about every other arrival; a few steps back are allowed for results
    # already there when the first sweep read them (those come in submission order).
    rank = {fields[b"job_id"].decode(): i
            for i, (_, fields) in enumerate(await client.redis.xrange(Keys().decisions))}
    late = sum(1 for a, b in itertools.pairwise([rank[j] for j in ids]) if b < a)
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
