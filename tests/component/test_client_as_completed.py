"""Waiting for many results on fakeredis: as_completed, wait_all and result.

Jobs are finished by the worker's own ResultStore (finish.lua), so the wake-ups under test (the
per-job done list and the batch done list) are the ones production pushes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Sequence
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis

from producer_client import Client, Result, ResultTimeout
from producer_client import client as client_mod
from producer_client.contract import Routing, Usage
from producer_client.keys import Keys
from worker.outcome import JobClock, Outcome
from worker.results import Finish, ResultStore

PREFIX = "t:"
KEYS = Keys(PREFIX)


@pytest.fixture()
def client(redis: Redis) -> Client:
    return Client(redis, prefix=PREFIX, queue="batch")


class FakeWorker:
    """Finishes queued jobs as the worker does: result, done list and batch list in finish.lua."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.store = ResultStore(redis, KEYS, ttl_s=600)
        self.order: list[str] = []

    async def finish(self, job_id: str) -> None:
        raw = await self.redis.get(KEYS.job(job_id))
        env = orjson.loads(raw) if raw is not None else {"k": {}, "et": None}
        model = "openai/gpt-4o-mini"
        result = Outcome(job_id, 1).succeeded(
            JobClock(enqueued_at=env["et"] / 1000 if env["et"] else None),
            content=f"answer {job_id}",
            message={"role": "assistant", "content": "a"},
            routing=Routing(rule="default", rules_version="t", model=model, chain=[model], max_tokens=8),
            usage=Usage(cost_usd="0.000001000"),
        )
        if (await self.store.finish(Finish(result, KEYS.queue("batch"), env["k"].get("batch_id")))).written:
            self.order.append(job_id)

    async def finish_all(self, job_ids: Sequence[str], *, gap_s: float = 0.0) -> None:
        for job_id in job_ids:
            await self.finish(job_id)
            if gap_s:
                await asyncio.sleep(gap_s)


def specs(n: int) -> list[dict[str, Any]]:
    return [{"id": f"job-{i:04d}", "prompt": f"q{i}"} for i in range(n)]


async def collect(client: Client, ids: list[str], **kwargs: Any) -> list[Result]:
    return [r async for r in client.as_completed(ids, **kwargs)]


@pytest.fixture()
def no_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the initial read; anything found later must come from a wake-up."""
    monkeypatch.setattr(client_mod, "_SWEEP_EVERY_S", 3600.0)
    monkeypatch.setattr(client_mod, "_SWEEP_UNWATCHED_S", 3600.0)


@pytest.mark.usefixtures("no_sweeps")
async def test_batch_results_come_once_each_in_finish_order(client: Client, redis: Redis) -> None:
    handles = await client.submit_many(specs(60), batch_id="b-1")
    ids = [h.job_id for h in handles]
    worker = FakeWorker(redis)
    shuffled = random.Random(3).sample(ids, len(ids))
    finishing = asyncio.create_task(worker.finish_all(shuffled, gap_s=0.002))
    # A job that runs twice must not be reported twice, nor must noise on the batch list.
    await cast(Awaitable[int], redis.rpush(KEYS.batch_done("b-1"), "not-ours", ids[0]))
    got = await collect(client, ids, batch_id="b-1", timeout=10)
    await finishing
    for job_id in ids[:5]:
        await worker.finish(job_id)  # a second run: the first result wins, no second wake-up
    assert [r.job_id for r in got] == worker.order == shuffled
    assert all(r.content == f"answer {r.job_id}" for r in got)


@pytest.mark.usefixtures("no_sweeps")
async def test_without_batch_id_a_window_of_done_lists_catches_every_job(
    client: Client, redis: Redis
) -> None:
    # More jobs than one BLPOP watches, finishing last-first: the ones outside the first window
    # finish before anything in the window does.
    ids = [h.job_id for h in await client.submit_many(specs(600))]
    worker = FakeWorker(redis)
    finishing = asyncio.create_task(worker.finish_all(ids[::-1]))
    got = await collect(client, ids, timeout=60)  # correctness, not speed: generous on a busy machine
    await finishing
    assert sorted(r.job_id for r in got) == ids
    assert len(got) == len(ids)


@pytest.mark.parametrize("batch", [True, False])
async def test_work_per_wake_up_does_not_grow_with_the_jobs_still_waiting(
    client: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    monkeypatch.setattr(client_mod, "_SWEEP_EVERY_S", 3600.0)
    monkeypatch.setattr(client_mod, "_SWEEP_UNWATCHED_S", 3600.0)
    handles = await client.submit_many(specs(3000), batch_id="b-big", chunk=1000)
    ids = [h.job_id for h in handles]
    reads: list[int] = []
    real_get_many = client.get_many

    async def spy(job_ids: Sequence[str], **kw: Any) -> list[Result | None]:
        reads.append(len(job_ids))
        return await real_get_many(job_ids, **kw)

    monkeypatch.setattr(client, "get_many", spy)
    worker = FakeWorker(redis)
    finishing = asyncio.create_task(worker.finish_all(ids[:40], gap_s=0.005))
    agen = client.as_completed(ids, batch_id="b-big" if batch else None, timeout=10)
    got = [await agen.__anext__() for _ in range(40)]
    await agen.aclose()
    await finishing
    assert sorted(r.job_id for r in got) == ids[:40]
    assert reads[0] == 3000  # the one initial read of everything
    assert max(reads[1:]) <= (40 if batch else client_mod._WINDOW)


async def test_a_job_first_sent_under_another_batch_is_found_by_the_sweep(
    client: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_mod, "_SWEEP_EVERY_S", 0.2)
    await client.submit_many(specs(1), batch_id="old")
    handles = await client.submit_many(specs(3), batch_id="new")
    assert [h.added for h in handles] == [False, True, True]
    worker = FakeWorker(redis)
    finishing = asyncio.create_task(worker.finish_all([h.job_id for h in handles], gap_s=0.05))
    t0 = time.monotonic()
    got = await collect(client, [h.job_id for h in handles], batch_id="new", timeout=5)
    await finishing
    assert sorted(r.job_id for r in got) == sorted(h.job_id for h in handles)
    assert time.monotonic() - t0 < 2


async def test_results_already_there_come_first_without_waiting(client: Client, redis: Redis) -> None:
    handles = await client.submit_many(specs(5), batch_id="b-1")
    ids = [h.job_id for h in handles]
    worker = FakeWorker(redis)
    await worker.finish_all(ids[:3])
    await redis.delete(KEYS.batch_done("b-1"))  # e.g. consumed by an interrupted earlier reader
    agen = client.as_completed(ids, batch_id="b-1", timeout=0.3)
    first = [await agen.__anext__() for _ in range(3)]
    assert sorted(r.job_id for r in first) == ids[:3]
    with pytest.raises(ResultTimeout, match="2 job"):
        await agen.__anext__()


async def test_wait_all_returns_results_in_the_order_asked(client: Client, redis: Redis) -> None:
    handles = await client.submit_many(specs(20))
    ids = [h.job_id for h in handles]
    worker = FakeWorker(redis)
    finishing = asyncio.create_task(worker.finish_all(ids[::-1], gap_s=0.002))
    results = await client.wait_all(ids, batch_id=handles[0].batch_id, timeout=10)
    await finishing
    assert [r.job_id for r in results] == ids
    assert worker.order == ids[::-1]


async def test_nothing_to_wait_for_ends_at_once(client: Client) -> None:
    assert await collect(client, [], batch_id="b", timeout=0.01) == []
    assert await client.wait_all([]) == []


async def test_every_waiter_on_one_job_wakes(client: Client, redis: Redis) -> None:
    job_id = await client.submit(prompt="x", job_id="shared")
    waiters = [asyncio.create_task(client.result(job_id, timeout=5)) for _ in range(3)]
    await asyncio.sleep(0.05)
    await FakeWorker(redis).finish(job_id)
    results = await asyncio.gather(*waiters)
    assert {r.job_id for r in results} == {"shared"}


async def test_result_times_out(client: Client) -> None:
    with pytest.raises(ResultTimeout, match="never"):
        await client.result("never", timeout=0.05)
