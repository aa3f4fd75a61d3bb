"""Security on real processes: pickles are data, never code; the API key is stored and logged
nowhere; Redis AUTH, ACL users and TLS work for worker and producer; prompts stay out of the
decision stream unless the operator opts in."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from producer_client.client import Client
from producer_client.contract import Result
from producer_client.errors import RedisUnavailable
from producer_client.keys import Keys
from tests.support.faults import (
    AuthRedisServer,
    EchoUpstream,
    Reply,
    TlsRedisServer,
    decisions_by_job,
    dump_all_values,
    enqueue_raw,
    error_body,
    finish_error_body,
    make_tls_files,
    routeq,
    tls_unavailable,
)
from tests.support.procs import API_KEY, REPO, Emulator, WorkerProcess, base_env
from tests.support.waiting import eventually, nothing_pending

pytestmark = pytest.mark.integration

KEYS = Keys()
PRO = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0, "max_latency_ms": 30000}
SECRET = API_KEY.removeprefix("sk-or-v1-")  # the part of the key that is not a public prefix


# -- (a) a pickle in the queue is refused, not executed ------------------------------------------------


class _Exploit:
    """Unpickling this runs code: it creates ``path``. arq's default serializer would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.path)!r}, 'w').close()",))


async def test_pickle_payloads_are_rejected_never_executed(
    tmp_path: Path, redis_url: str, worker: WorkerProcess, client: Client
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"t": None, "f": "complete", "a": [_Exploit(marker)], "k": {},
                            "et": int(time.time() * 1000)})
    pickle.loads(payload)  # the payload is live: unpickling it here runs the code
    assert marker.exists()
    marker.unlink()

    await enqueue_raw(client.redis, "pickled", payload)
    res = await client.result("pickled", timeout=20)
    # A dead letter holding a pickle must not run on `routeq retry` either.
    await client.redis.set(f"{KEYS.prefix}failedjob:pickled-dl", payload)
    await client.redis.zadd(KEYS.failed, {"pickled-dl": time.time() * 1000})
    await client.redis.set(KEYS.result("pickled-dl"), res.model_dump_json())
    retry = routeq(redis_url, "retry", "pickled-dl")

    assert res.status == "rejected" and res.error is not None and res.error.type == "invalid_job"
    assert "not JSON" in res.error.message and "pickles are refused" in res.error.message
    assert retry.returncode == 1 and "not a valid job" in retry.stderr
    assert not marker.exists()
    assert worker.proc.poll() is None


# -- (b) the API key never leaves the process --------------------------------------------------------


def _leaks(text: str) -> list[str]:
    """The key, or any 7-character run of its secret part, found in ``text``."""
    if API_KEY in text:
        return [API_KEY]
    return sorted({SECRET[i : i + 7] for i in range(len(SECRET) - 6) if SECRET[i : i + 7] in text})


ECHOES = [
    Reply(500, error_body(500, "internal error while serving key {key}")),
    Reply(429, error_body(429, "rate limited: {key}"), headers=(("Retry-After", "0"),)),
    Reply(200, error_body(502, "provider rejected Authorization: Bearer {key}")),
    Reply(200, finish_error_body("generation aborted for {key}")),
    Reply(200, "{}", delay_s=1.5),  # longer than OPENROUTER_TIMEOUT_S: a timeout
    Reply(200, "<html>proxy error for {key}</html>"),
    Reply(400, error_body(400, "bad request from key {key}")),
    Reply(401, error_body(401, "No auth credentials found for {key}")),
]
ECHO_ERRORS = ["server_error", "rate_limited", "upstream_error_200", "finish_error", "timeout",
               "invalid_response", "bad_request", "auth"]


async def _leak_run(
    redis_url: str, client: Client, replies: list[Reply], jobs: int
) -> tuple[list[Result], str, str, str]:
    """``jobs`` jobs, one at a time, against an upstream answering ``replies`` in order and echoing
    the key; returns the results, the worker's log, the decision stream and all of Redis."""
    upstream = EchoUpstream(replies)
    worker = WorkerProcess(redis_url, upstream.base_url, OPENROUTER_MAX_RETRIES="0",
                           OPENROUTER_TIMEOUT_S="0.5", ROUTEQ_BREAKER_THRESHOLD="1000")
    try:
        results = [await client.result(await client.submit(prompt=f"leak test {i}", context=PRO), timeout=20)
                   for i in range(jobs)]
        # The result is written before the worker's last bookkeeping for the job: read Redis once
        # that is done too.
        await eventually(lambda: nothing_pending(client), timeout=20, what="the worker done with every job")
        stored = (await dump_all_values(client.redis)).decode("utf-8", "replace")
        decisions = orjson.dumps(await decisions_by_job(client.redis)).decode()
    finally:
        worker.stop()
        upstream.close()
    assert upstream.count == len(replies)
    return results, _whole_output(worker), decisions, stored


async def test_api_key_is_in_no_log_result_decision_or_key(redis_url: str, client: Client) -> None:
    # The last job meets the account block the 401 set: it fails without a call.
    results, log, decisions, stored = await _leak_run(redis_url, client, ECHOES, len(ECHOES) + 1)
    assert [r.error.type if r.error else None for r in results] == [*ECHO_ERRORS, "auth"]
    assert results[-1].routing is not None and results[-1].routing.attempts == []  # blocked, no call
    assert "[redacted]" in results[0].model_dump_json()  # the echo did reach the result, redacted
    assert "[redacted]" in log  # ... and the 401's account-block log line
    assert _leaks(log) == [], "worker log"
    assert _leaks("\n".join(r.model_dump_json() for r in results)) == [], "results"
    assert _leaks(decisions) == [], "decision stream"
    assert _leaks(stored) == [], "some Redis key"


async def test_api_key_cut_in_half_by_truncation_is_still_redacted(redis_url: str, client: Client) -> None:
    """Regression: upstream error text used to be cut to 300 characters before the key was
    redacted, so a key straddling the cut survived in part."""
    straddle = Reply(503, error_body(503, "A" * 270 + " {key} trailing"))  # the cut falls inside the key
    results, _, _, stored = await _leak_run(redis_url, client, [straddle], 1)
    assert results[0].error is not None and results[0].error.type == "server_error"
    assert _leaks(results[0].model_dump_json()) == [], "result"
    assert _leaks(stored) == [], "some Redis key"


# -- (c) Redis AUTH, ACL users, TLS -----------------------------------------------------------------------


async def _round_trip(url: str, emulator: Emulator) -> tuple[WorkerProcess, str]:
    worker = WorkerProcess(url, emulator.base_url)
    client = Client.from_url(url)
    try:
        res = await client.result(await client.submit(prompt="over a guarded Redis", context=PRO), timeout=20)
    finally:
        await client.close()
        worker.kill()
    assert res.status == "succeeded", res.error
    return worker, res.job_id


@pytest.mark.parametrize("user", [None, "routeq-app"], ids=["requirepass", "acl-user"])
async def test_redis_auth_works_and_a_wrong_password_is_a_clear_error(
    user: str | None, clean_emulator: Emulator
) -> None:
    password = "pw-Zq81-not-for-logs"
    server = AuthRedisServer(password, user=user)
    server.start()
    try:
        worker, _ = await _round_trip(server.url, clean_emulator)
        wrong = Client.from_url(server.url_with("not-the-password"))
        t0 = time.monotonic()
        with pytest.raises(RedisUnavailable) as err:
            await asyncio.wait_for(wrong.submit(prompt="x", context=PRO), 10)
        took = time.monotonic() - t0
        await wrong.close()
        # A worker with bad credentials stops at once with a clear error (they will not heal).
        bad_worker = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "worker"], cwd=REPO, capture_output=True, text=True, timeout=30,
            env=base_env(REDIS_URL=server.url_with("not-the-password"),
                         OPENROUTER_BASE_URL=clean_emulator.base_url, OPENROUTER_API_KEY="sk-or-x"),
        )
        line = bad_worker.stderr
    finally:
        server.close()

    print(f"\nwrong Redis password ({'ACL user' if user else 'requirepass'}): "
          f"producer error after {took:.2f}s: {err.value}")
    assert "invalid username-password pair" in str(err.value) and took < 5
    assert bad_worker.returncode == 2 and "refused the credentials" in line
    assert "invalid username-password pair" in line
    for text in (str(err.value), worker.output, bad_worker.stdout + bad_worker.stderr):
        assert password not in text and "not-the-password" not in text
    assert ":***@" in worker.output  # the URL is logged redacted


# Regression (both tests below): with ``health_check_interval`` and a Retry, redis-py 5 recursed
# connect → on_connect → check_health → PING → connect … whenever a new connection's first commands
# failed (redis/redis-py#3745): a RecursionError or a hang instead of RedisUnavailable.


async def test_a_missing_redis_password_is_a_clear_error() -> None:
    server = AuthRedisServer("pw-needed")
    server.start()
    anonymous = Client.from_url(f"redis://127.0.0.1:{server.port}/0")
    try:
        with pytest.raises(RedisUnavailable) as err:
            await asyncio.wait_for(anonymous.submit(prompt="x", context=PRO), 10)
    finally:
        await anonymous.close()
        server.close()
    assert "Authentication required" in str(err.value)


@pytest.fixture()
def tls_server(tmp_path: Path) -> Iterator[TlsRedisServer]:
    why = tls_unavailable()
    if why:
        pytest.skip(why)
    server = TlsRedisServer(make_tls_files(tmp_path / "tls"))
    try:
        server.start()
    except TimeoutError:
        log = server.log_tail()
        server.close()
        pytest.skip(f"redis-server did not start with TLS (built without it?): {log[-300:]}")
    yield server
    server.close()


async def test_tls_rediss_works_for_worker_and_producer(
    tmp_path: Path, tls_server: TlsRedisServer, clean_emulator: Emulator
) -> None:
    assert tls_server.url.startswith("rediss://") and "ssl_check_hostname=true" in tls_server.url
    await _round_trip(tls_server.url, clean_emulator)
    other = make_tls_files(tmp_path / "other", name="other-ca")
    stranger = Client.from_url(tls_server.url_with_ca(other.ca))  # trusts another CA: must refuse
    try:
        with pytest.raises(RedisUnavailable) as err:
            await asyncio.wait_for(stranger.submit(prompt="x", context=PRO), 10)
    finally:
        await stranger.close()
    assert "certificate verify failed" in str(err.value)


async def test_a_plaintext_client_on_the_tls_port_is_a_clear_error(tls_server: TlsRedisServer) -> None:
    plain = Client.from_url(f"redis://127.0.0.1:{tls_server.port}/0")
    try:
        with pytest.raises(RedisUnavailable):
            await asyncio.wait_for(plain.submit(prompt="x", context=PRO), 10)
    finally:
        await plain.close()


# -- (d) prompts stay out of the decision stream by default ---------------------------------------------


@pytest.mark.parametrize("store", [False, True], ids=["default", "store-prompts"])
async def test_prompts_reach_the_decision_stream_only_when_opted_in(
    store: bool, redis_url: str, clean_emulator: Emulator, client: Client
) -> None:
    settings = {"ROUTEQ_STORE_PROMPTS": "1"} if store else {}
    worker = WorkerProcess(redis_url, clean_emulator.base_url, **settings)
    prompt = "my card number is 4111-1111-1111-1111"
    try:
        ids = [await client.submit(prompt=p, context=PRO) for p in (prompt, prompt, "something else")]
        results = await client.wait_all(ids, timeout=20)
        decisions = await decisions_by_job(client.redis)
    finally:
        worker.kill()
    log = _whole_output(worker)
    assert all(r.status == "succeeded" for r in results)
    entries = [decisions[j][0] for j in ids]
    if store:
        assert all("messages" in e and "prompt_sha256" not in e for e in entries)
        assert orjson.loads(entries[0]["messages"]) == [{"role": "user", "content": prompt}]
    else:
        assert all("messages" not in e for e in entries)
        assert all(prompt not in "".join(e.values()) for e in entries)
        digests = [e["prompt_sha256"] for e in entries]
        assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests)
        assert digests[0] == digests[1] != digests[2]  # same prompt, same digest: countable, not readable
    assert prompt not in log  # and never in the worker's log at the default level


async def test_prompts_stay_out_of_the_log_even_when_debugging(
    redis_url: str, clean_emulator: Emulator, client: Client
) -> None:
    worker = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_LOG_LEVEL="DEBUG")
    try:
        res = await client.result(await client.submit(prompt="card 4111-1111-1111-1111", context=PRO),
                                  timeout=20)
        # arq's per-job lines are on at DEBUG; its finish line comes after all else logged for the job.
        started = await asyncio.to_thread(worker.wait_for_line, f"→ {res.job_id}")
        await asyncio.to_thread(worker.wait_for_line, f"← {res.job_id}")
    finally:
        worker.kill()
    assert res.status == "succeeded"
    assert "4111-1111" not in started
    assert "4111-1111" not in _whole_output(worker)


def _whole_output(worker: WorkerProcess) -> str:
    """All an ended worker printed. This process reads the output on a thread that may lag behind
    on a busy machine; once the process has ended, that thread stops at end of file. procs.py has
    no public hook for that, hence the private ``_reader``."""
    assert worker.proc.poll() is not None, "the worker is still running"
    worker._reader.join(timeout=30)
    assert not worker._reader.is_alive(), "the worker's output was not read to the end"
    return worker.output
