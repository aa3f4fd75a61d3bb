"""SyncClient on fakeredis, called from plain threads the way a WSGI server calls it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import fakeredis
import orjson
import pytest

from producer_client import Client, QueueFull, ResultTimeout, SyncClient
from producer_client.contract import Routing, Usage
from producer_client.keys import Keys
from worker.outcome import JobClock, Outcome
from worker.results import Finish, ResultStore

PREFIX = "t:"
KEYS = Keys(PREFIX)


@pytest.fixture()
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture()
def sync(server: fakeredis.FakeServer) -> Iterator[SyncClient]:
    client = SyncClient(lambda: Client(fakeredis.FakeAsyncRedis(server=server), prefix=PREFIX))
    yield client
    client.close()


def finish(server: fakeredis.FakeServer, job_ids: list[str]) -> None:
    """Finish jobs from this thread with its own loop and connection, as a worker process would."""

    async def go() -> None:
        redis = fakeredis.FakeAsyncRedis(server=server)
        store = ResultStore(redis, KEYS, ttl_s=600)
        model = "openai/gpt-4o-mini"
        for job_id in job_ids:
            env = orjson.loads(await redis.get(KEYS.job(job_id)))
            result = Outcome(job_id, 1).succeeded(
                JobClock(enqueued_at=env["et"] / 1000), content=f"answer {job_id}",
                message={"role": "assistant", "content": "a"},
                routing=Routing(rule="default", rules_version="t", model=model, chain=[model], max_tokens=8),
                usage=Usage(cost_usd="0.000000100"),
            )
            await store.finish(Finish(result, KEYS.queue("batch"), env["k"].get("batch_id")))
        await redis.aclose()

    asyncio.run(go())


def test_threads_submit_and_wait_through_one_client(sync: SyncClient, server: fakeredis.FakeServer) -> None:
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def request(n: int) -> None:  # one web request: submit, then wait for the answer
        try:
            job_id = sync.submit(prompt=f"request {n}", job_id=f"req-{n}")
            results[n] = sync.result(job_id, timeout=5).content or ""
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while sync.queue_depth() < 8 and not errors and time.monotonic() < deadline:
        time.sleep(0.005)
    finish(server, [f"req-{n}" for n in range(8)])
    for t in threads:
        t.join(10)
    assert errors == []
    assert results == {n: f"answer req-{n}" for n in range(8)}


def test_submit_many_as_completed_and_wait_all(sync: SyncClient, server: fakeredis.FakeServer) -> None:
    handles = sync.submit_many(({"id": f"b{i}", "prompt": "x"} for i in range(10)), batch_id="bb")
    ids = [h.job_id for h in handles]
    assert all(h.added for h in handles)
    assert sync.get(ids[0]) is None
    finisher = threading.Thread(target=finish, args=(server, ids[::-1]))
    finisher.start()
    seen = [r.job_id for r in sync.as_completed(ids, batch_id="bb", timeout=5)]
    finisher.join()
    assert sorted(seen) == sorted(ids) and len(seen) == 10
    assert [r.job_id for r in sync.wait_all(ids, timeout=1)] == ids
    assert [r.job_id if r else None for r in sync.get_many([ids[1], "missing"])] == [ids[1], None]


def test_leaving_as_completed_early_is_clean(sync: SyncClient, server: fakeredis.FakeServer) -> None:
    ids = [h.job_id for h in sync.submit_many([{"id": f"e{i}", "prompt": "x"} for i in range(3)])]
    finish(server, ids[:1])
    for res in sync.as_completed(ids, timeout=5):
        assert res.job_id == ids[0]
        break
    assert sync.get(ids[0]) is not None  # the client still works after the abandoned iterator


def test_errors_cross_the_thread_boundary(server: fakeredis.FakeServer) -> None:
    with SyncClient(
        lambda: Client(fakeredis.FakeAsyncRedis(server=server), prefix=PREFIX, max_queue_depth=1)
    ) as sync:
        sync.submit(prompt="x", job_id="one")
        with pytest.raises(QueueFull):
            sync.submit(prompt="x", job_id="two")
        with pytest.raises(ResultTimeout):
            sync.result("one", timeout=0.05)


def test_close_is_idempotent_and_final(server: fakeredis.FakeServer) -> None:
    sync = SyncClient(lambda: Client(fakeredis.FakeAsyncRedis(server=server), prefix=PREFIX))
    thread = sync._thread
    sync.close()
    sync.close()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        sync.get("x")
