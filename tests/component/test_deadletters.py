"""Dead letters on fakeredis: listing and pruning, re-queueing under the same id, and the CLI.

Failed results are written by the worker's own ResultStore (finish.lua), so the index under test
is the one production fills.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import orjson
import pytest
from redis.asyncio import Redis

from producer_client.client import Client
from producer_client.contract import AttemptInfo, Job, Routing
from producer_client.jobs import build_job
from producer_client.keys import Keys
from worker.cli import deadletter_cmd
from worker.cli.main import main
from worker.deadletters import RetryRefused, list_failed, requeue
from worker.outcome import JobClock, Outcome
from worker.results import Finish, ResultStore

PREFIX = "t:"
KEYS = Keys(PREFIX)
TTL_S = 3600
MODEL = "openai/gpt-4o"
Capture = pytest.CaptureFixture[str]


@pytest.fixture()
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture()
async def redis(server: fakeredis.FakeServer) -> AsyncIterator[Redis]:
    client = fakeredis.FakeAsyncRedis(server=server)
    yield client
    await client.aclose()


@pytest.fixture()
def client(redis: Redis) -> Client:
    return Client(redis, prefix=PREFIX, queue="batch")


def job_for(job_id: str) -> Job:
    return build_job(prompt=f"prompt of {job_id}", context={"user_id": "u-1"}, metadata={"n": job_id})


async def fail_job(
    redis: Redis, job_id: str, *, age_s: float = 0, error_type: str = "upstream_error",
    message: str = "all models failed", keep: bool = True,
) -> None:
    """What a worker does when a job fails: write the result (indexing it) and keep the job."""
    routing = Routing(
        rule="code-tasks", rules_version="v1", model=MODEL, chain=[MODEL],
        max_tokens=64, attempts=[AttemptInfo(model=MODEL, status=502), AttemptInfo(model=MODEL, status=503)],
    )
    result = Outcome(job_id, 1).failed(JobClock(enqueued_at=None), error_type, message, routing=routing)
    finish = Finish(result, KEYS.queue("batch"), job=job_for(job_id) if keep else None)
    assert (await ResultStore(redis, KEYS, ttl_s=TTL_S).finish(finish)).written
    if age_s:
        await redis.zadd(KEYS.failed, {job_id: int((time.time() - age_s) * 1000)})


async def succeed_job(redis: Redis, job_id: str) -> None:
    result = Outcome(job_id, 1).succeeded(
        JobClock(enqueued_at=None), content="ok", message={"role": "assistant", "content": "ok"},
        routing=Routing(rule="r", rules_version="v1", model=MODEL, chain=[MODEL], max_tokens=8),
        usage={"prompt_tokens": 1, "completion_tokens": 1},  # type: ignore[arg-type]
    )
    assert (await ResultStore(redis, KEYS, ttl_s=TTL_S).finish(Finish(result, KEYS.queue("batch")))).written


async def queued_job(redis: Redis, job_id: str) -> Job:
    """The Job inside its envelope, as a worker would decode it."""
    raw = await redis.get(KEYS.job(job_id))
    assert raw is not None
    return Job.model_validate(orjson.loads(raw)["a"][0])


# --- keeping and listing -----------------------------------------------------------------------


async def test_the_kept_job_lives_exactly_as_long_as_its_result(redis: Redis) -> None:
    await fail_job(redis, "j1")
    doc = await redis.get(KEYS.failed_job("j1"))
    assert doc is not None and Job.model_validate_json(doc) == job_for("j1")
    assert KEYS.failed_job("j1") == "t:failedjob:j1"
    assert abs(await redis.pttl(KEYS.failed_job("j1")) - await redis.pttl(KEYS.result("j1"))) < 1000


async def test_listing_is_newest_first_with_what_an_operator_needs(redis: Redis) -> None:
    for i, job_id in enumerate(["old", "mid", "new"]):
        await fail_job(redis, job_id, age_s=300 - 100 * i, error_type=f"e-{job_id}")
    await succeed_job(redis, "fine")
    letters = await list_failed(redis, KEYS)
    assert [d.job_id for d in letters] == ["new", "mid", "old"]
    d = letters[0]
    assert (d.error_type, d.message, d.rule, d.model, d.attempts) == (
        "e-new", "all models failed", "code-tasks", MODEL, 2,
    )
    assert d.to_dict()["failed_at"].endswith("+00:00")
    assert [d.job_id for d in await list_failed(redis, KEYS, limit=2)] == ["new", "mid"]
    since = int((time.time() - 150) * 1000)
    assert [d.job_id for d in await list_failed(redis, KEYS, since_ms=since)] == ["new"]


async def test_expired_results_are_pruned_from_the_index_while_listing(redis: Redis) -> None:
    for i in range(7):
        await fail_job(redis, f"j{i}", age_s=100 - i)
    for gone in ("j6", "j3", "j2"):  # the result TTL ran out
        await redis.delete(KEYS.result(gone))
    letters = await list_failed(redis, KEYS, limit=3, chunk=2)
    assert [d.job_id for d in letters] == ["j5", "j4", "j1"]
    remaining = {m.decode() for m in await redis.zrange(KEYS.failed, 0, -1)}
    assert remaining == {"j0", "j1", "j4", "j5"}


# --- re-queueing --------------------------------------------------------------------------------


async def test_retry_requeues_under_the_same_id_and_waiters_get_the_new_result(
    redis: Redis, client: Client
) -> None:
    await fail_job(redis, "j1")
    await requeue(client, "j1")
    assert await queued_job(redis, "j1") == job_for("j1")
    assert await redis.zscore(KEYS.queue("batch"), "j1") is not None
    for key in (KEYS.result("j1"), KEYS.done("j1"), KEYS.failed_job("j1")):
        assert await redis.exists(key) == 0
    assert await redis.zscore(KEYS.failed, "j1") is None

    waiter = asyncio.create_task(client.result("j1", timeout=5))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # the old failed result no longer answers
    await redis.delete(KEYS.job("j1"))  # a worker took the job ...
    await redis.zrem(KEYS.queue("batch"), "j1")
    await succeed_job(redis, "j1")  # ... and this time it worked
    assert (await waiter).status == "succeeded"


async def test_a_job_that_fails_again_can_be_retried_again(redis: Redis, client: Client) -> None:
    await fail_job(redis, "j1")
    await requeue(client, "j1", queue="interactive")
    assert await redis.zscore(KEYS.queue("interactive"), "j1") is not None
    await redis.delete(KEYS.job("j1"))
    await fail_job(redis, "j1", error_type="timeout")
    assert [d.error_type for d in await list_failed(redis, KEYS)] == ["timeout"]
    await requeue(client, "j1")
    assert await queued_job(redis, "j1") == job_for("j1")


async def test_retry_refuses_unknown_jobs_and_lost_documents(redis: Redis, client: Client) -> None:
    await succeed_job(redis, "ok")
    with pytest.raises(RetryRefused, match="not in the failed-job index"):
        await requeue(client, "ok")
    await fail_job(redis, "lost", keep=False)
    with pytest.raises(RetryRefused, match="job document is gone"):
        await requeue(client, "lost")
    assert await redis.zscore(KEYS.failed, "lost") is not None  # nothing was touched
    assert await redis.exists(KEYS.result("lost"), KEYS.done("lost")) == 2
    assert await redis.exists(KEYS.job("ok"), KEYS.job("lost")) == 0


async def test_retry_refuses_a_job_that_is_already_queued(redis: Redis, client: Client) -> None:
    await fail_job(redis, "j1")
    await redis.set(KEYS.job("j1"), b"{}")
    with pytest.raises(RetryRefused, match="already queued or running"):
        await requeue(client, "j1")
    assert await redis.exists(KEYS.result("j1"), KEYS.failed_job("j1")) == 2


async def test_a_full_queue_undoes_the_claim(redis: Redis) -> None:
    await fail_job(redis, "j1", age_s=10)
    score = await redis.zscore(KEYS.failed, "j1")
    result = await redis.get(KEYS.result("j1"))
    full = Client(redis, prefix=PREFIX, queue="batch", max_queue_depth=1)
    await redis.zadd(KEYS.queue("batch"), {"other": 1})
    with pytest.raises(RetryRefused, match="maximum depth"):
        await requeue(full, "j1")
    assert await redis.zscore(KEYS.failed, "j1") == score
    assert await redis.get(KEYS.result("j1")) == result
    assert await redis.lrange(KEYS.done("j1"), 0, -1) == [b"1"]  # type: ignore[misc]
    assert 0 < await redis.pttl(KEYS.result("j1")) <= TTL_S * 1000
    assert 0 < await redis.pttl(KEYS.failed_job("j1")) <= TTL_S * 1000
    assert await redis.exists(KEYS.job("j1")) == 0
    await redis.zrem(KEYS.queue("batch"), "other")
    await requeue(full, "j1")  # and it can be retried once there is room
    assert await queued_job(redis, "j1") == job_for("j1")


async def test_concurrent_retries_of_one_job_enqueue_it_once(redis: Redis, client: Client) -> None:
    await fail_job(redis, "j1")
    outcomes = await asyncio.gather(*(requeue(client, "j1") for _ in range(8)), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, RetryRefused) for o in outcomes if o is not None)
    assert await redis.zcard(KEYS.queue("batch")) == 1


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture()
def cli(server: fakeredis.FakeServer, monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeServer:
    """Route the CLI's Redis to the fake server; each asyncio.run gets its own connection."""
    urls: list[str] = []

    def fake_connect(url: str) -> Redis:
        urls.append(url)
        return fakeredis.FakeAsyncRedis(server=server)

    monkeypatch.setattr(deadletter_cmd, "connect_redis", fake_connect)
    monkeypatch.setenv("ROUTEQ_PREFIX", PREFIX)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    return server


def seed(server: fakeredis.FakeServer, *jobs: tuple[str, str]) -> None:
    async def go() -> None:
        r = fakeredis.FakeAsyncRedis(server=server)
        for i, (job_id, error_type) in enumerate(jobs):
            await fail_job(r, job_id, age_s=100 - i, error_type=error_type, message="x" * 200)
        await r.aclose()

    asyncio.run(go())


def state(server: fakeredis.FakeServer) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        r = fakeredis.FakeAsyncRedis(server=server)
        out = {
            "failed": [m.decode() for m in await r.zrange(KEYS.failed, 0, -1)],
            "batch": [m.decode() for m in await r.zrange(KEYS.queue("batch"), 0, -1)],
            "interactive": [m.decode() for m in await r.zrange(KEYS.queue("interactive"), 0, -1)],
        }
        await r.aclose()
        return out

    return asyncio.run(go())


def test_cli_failed_prints_a_table_and_json(cli: fakeredis.FakeServer, capsys: Capture) -> None:
    seed(cli, ("a1", "timeout"), ("b2", "upstream_error"))
    assert main(["failed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "JOB", "ID", "FAILED", "AT", "(UTC)", "ERROR", "RULE", "MODEL", "ATTEMPTS", "MESSAGE"
    ]
    assert lines[1].startswith("b2 ") and "upstream_error" in lines[1] and MODEL in lines[1]
    assert lines[1].endswith("x" * 77 + "...")  # long messages are cut
    assert main(["failed", "--json", "--limit", "1"]) == 0
    (doc,) = orjson.loads(capsys.readouterr().out)
    assert doc["job_id"] == "b2" and doc["attempts"] == 2 and len(doc["message"]) == 200
    assert main(["failed", "--since", "2999-01-01T00:00:00"]) == 0
    assert capsys.readouterr().out == "no failed jobs\n"


def test_cli_retry_one_job(cli: fakeredis.FakeServer, capsys: Capture) -> None:
    seed(cli, ("a1", "timeout"), ("b2", "upstream_error"))
    assert main(["retry", "a1"]) == 0
    assert "re-queued a1 on batch" in capsys.readouterr().out
    assert state(cli) == {"failed": ["b2"], "batch": ["a1"], "interactive": []}
    assert main(["retry", "a1"]) == 1
    assert "not in the failed-job index" in capsys.readouterr().err


def test_cli_retry_all_of_one_error_type(cli: fakeredis.FakeServer, capsys: Capture) -> None:
    seed(cli, ("a1", "timeout"), ("b2", "upstream_error"), ("c3", "timeout"))
    assert main(["retry", "--all", "--error-type", "timeout", "--queue", "interactive"]) == 0
    assert "re-queued 2 of 2" in capsys.readouterr().out
    assert state(cli) == {"failed": ["b2"], "batch": [], "interactive": ["a1", "c3"]}
    assert main(["retry", "--all"]) == 0
    assert state(cli)["batch"] == ["b2"]


def test_cli_retry_respects_the_queue_depth_cap(
    cli: fakeredis.FakeServer, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(cli, ("a1", "timeout"), ("b2", "timeout"))
    monkeypatch.setenv("ROUTEQ_MAX_QUEUE_DEPTH", "1")
    assert main(["retry", "--all"]) == 1  # room for one: the other is refused and stays failed
    out = capsys.readouterr()
    assert "re-queued 1 of 2" in out.out and "maximum depth" in out.err
    assert len(state(cli)["batch"]) == 1 and len(state(cli)["failed"]) == 1


@pytest.mark.parametrize("argv", [["retry"], ["retry", "a1", "--all"], ["retry", "a1", "--error-type", "x"]])
def test_cli_retry_needs_exactly_one_target(
    cli: fakeredis.FakeServer, capsys: Capture, argv: list[str]
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("routeq: ")


def test_cli_reports_an_unreachable_redis(monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    from tests.support.procs import free_port

    monkeypatch.setenv("ROUTEQ_PREFIX", PREFIX)
    url = f"redis://user:secret@127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(
        deadletter_cmd, "connect_redis", lambda u: Redis.from_url(u, socket_connect_timeout=0.2)
    )
    assert main(["failed", "--redis", url]) == 4  # exit code 4: Redis trouble
    err = capsys.readouterr().err
    assert "127.0.0.1" in err and "secret" not in err
