"""OpenRouterClient against a scripted httpx.MockTransport, with a fake clock and sleep."""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.openrouter import (
    Attempt,
    ChatRequest,
    Completion,
    OpenRouterClient,
    OpenRouterSettings,
    UpstreamError,
)
from worker.openrouter.errors import StopCalls

KEY = "sk-or-v1-CANARY-7f3a9c1e5b2d4068aa11"
BASE = "http://127.0.0.1:9/api/v1"
MESSAGES = [{"role": "user", "content": "Capital of France?"}]

Reply = Callable[[httpx.Request], httpx.Response]


# --- fakes -------------------------------------------------------------------------------------


class FakeTime:
    """A monotonic clock that only moves when the client sleeps (or a handler says so)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Upstream:
    """Scripted OpenRouter: answers with the queued replies in order, then with ``default``."""

    replies: list[Reply | Exception] = field(default_factory=list)
    default: Reply | Exception | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if self.replies else self.default
        if reply is None:
            raise AssertionError("unexpected request")
        if isinstance(reply, Exception):
            raise reply
        return reply(request)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.content) for r in self.requests]

    @property
    def windows(self) -> list[list[str]]:
        return [[b["model"], *b.get("models", [])] for b in self.bodies]


def ok(model: str | None = None, cost: float | None = 0.00002415, **extra: Any) -> Reply:
    def reply(request: httpx.Request) -> httpx.Response:
        sent = orjson.loads(request.content)
        usage: dict[str, Any] = {"prompt_tokens": 29, "completion_tokens": 33}
        if cost is not None:
            usage["cost"] = cost
        body = {
            "id": "gen-1764926476-0N0195qHFzGljvYKVijc", "provider": "OpenAI",
            "model": model or sent["model"], "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Paris"}}],
            "usage": usage, **extra,
        }
        return httpx.Response(200, json=body)

    return reply


def err(status: int, message: str = "failed", *, headers: dict[str, str] | None = None,
        http_status: int | None = None, **error: Any) -> Reply:
    def reply(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": status, "message": message, **error}}
        return httpx.Response(http_status or status, json=body, headers=headers)

    return reply


def raw(status: int, content: bytes) -> Reply:
    return lambda request: httpx.Response(status, content=content)


def chain(n: int) -> tuple[str, ...]:
    return tuple(f"vendor/model-{i}" for i in range(n))


def make_client(upstream: Upstream, clock: FakeTime, rng: random.Random | None = None,
                **overrides: Any) -> OpenRouterClient:
    options: dict[str, Any] = {"base_url": BASE, "api_key": KEY, "referer": "https://routeq.test",
                               "title": "routeq-tests", **overrides}
    return OpenRouterClient(
        OpenRouterSettings(**options),
        transport=httpx.MockTransport(upstream.handler),
        sleep=clock.sleep,
        rng=rng or random.Random(1234),
        clock=clock.clock,
    )


def request(models: tuple[str, ...], **kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=MESSAGES, chain=models, max_tokens=256, **kwargs)


async def run(upstream: Upstream, models: tuple[str, ...], clock: FakeTime | None = None,
              *, rng: random.Random | None = None, client_options: dict[str, Any] | None = None,
              **call: Any) -> Completion:
    clock = clock or FakeTime()
    async with make_client(upstream, clock, rng, **(client_options or {})) as client:
        return await client.complete(request(models), **call)


async def run_failing(upstream: Upstream, models: tuple[str, ...],
                      clock: FakeTime | None = None, **kwargs: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await run(upstream, models, clock, **kwargs)
    return info.value


class TopRng(random.Random):
    """Always draws the top of the jitter range, exposing the exponential ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


# --- request shape -----------------------------------------------------------------------------


async def test_success_request_headers_body_and_parsing() -> None:
    upstream = Upstream([ok(model="vendor/model-1")])
    clock = FakeTime()
    async with make_client(upstream, clock) as client:
        result = await client.complete(ChatRequest(
            messages=MESSAGES, chain=chain(2), max_tokens=64,
            provider={"order": ["openai"], "allow_fallbacks": True},
            params={"temperature": 0.2, "response_format": {"type": "json_object"}},
            user="user-42",
        ))
    sent = upstream.requests[0]
    assert sent.method == "POST"
    assert str(sent.url) == BASE + "/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["http-referer"] == "https://routeq.test"
    assert sent.headers["x-title"] == "routeq-tests"
    assert sent.headers["x-openrouter-title"] == "routeq-tests"
    assert upstream.bodies[0] == {
        "model": "vendor/model-0", "models": ["vendor/model-1"], "messages": MESSAGES,
        "max_tokens": 64, "provider": {"order": ["openai"], "allow_fallbacks": True},
        "temperature": 0.2, "response_format": {"type": "json_object"}, "user": "user-42",
    }
    assert result.content == "Paris"
    assert result.model_served == "vendor/model-1"
    assert result.provider == "OpenAI"
    assert result.cost_nano == 24150
    assert (result.prompt_tokens, result.completion_tokens) == (29, 33)
    [attempt] = result.attempts
    assert (attempt.status, attempt.error_type, attempt.served_model) == (200, None, "vendor/model-1")
    assert attempt.failed_models == ("vendor/model-0",)  # OpenRouter fell back past it


async def test_no_key_means_no_authorization_header_and_max_tokens_still_sent() -> None:
    upstream = Upstream([ok()])
    await run(upstream, chain(1), client_options={"api_key": None, "referer": None})
    sent = upstream.requests[0]
    assert "authorization" not in sent.headers
    assert "http-referer" not in sent.headers
    assert upstream.bodies[0]["max_tokens"] == 256
    assert "models" not in upstream.bodies[0]


def test_params_cannot_override_the_fields_the_client_owns() -> None:
    for key in ("model", "models", "messages", "max_tokens", "stream"):
        with pytest.raises(ValueError, match=key):
            ChatRequest(messages=MESSAGES, chain=chain(1), max_tokens=10, params={key: 1})
    with pytest.raises(ValueError):
        ChatRequest(messages=MESSAGES, chain=chain(1), max_tokens=0)


# --- windows -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [(1, [[0]]), (4, [[0, 1, 2, 3]]), (5, [[0, 1, 2, 3], [4]]),
     (9, [[0, 1, 2, 3], [4, 5, 6, 7], [8]])],
)
async def test_chain_is_split_into_windows_of_four(size: int, expected: list[list[int]]) -> None:
    upstream = Upstream(default=err(404, "No endpoints found"))
    exc = await run_failing(upstream, chain(size))
    assert upstream.windows == [[f"vendor/model-{i}" for i in w] for w in expected]
    assert all(len(b.get("models", [])) <= 3 for b in upstream.bodies)
    assert exc.error_type == "not_found"
    assert not exc.retryable
    assert len(exc.attempts) == len(expected)


async def test_next_window_after_retries_are_exhausted() -> None:
    upstream = Upstream([err(503), err(503), err(503), ok()])
    clock = FakeTime()
    result = await run(upstream, chain(5), clock, client_options={"max_retries": 2})
    assert upstream.windows == [[f"vendor/model-{i}" for i in range(4)]] * 3 + [["vendor/model-4"]]
    assert len(clock.sleeps) == 2  # two retries in window one, none before window two
    assert [a.status for a in result.attempts] == [503, 503, 503, 200]
    assert result.model_served == "vendor/model-4"


async def test_model_specific_400_moves_on_but_invalid_request_stops() -> None:
    upstream = Upstream([err(400, "vendor/model-0 is not a valid model ID"), ok()])
    result = await run(upstream, chain(5))
    assert [a.error_type for a in result.attempts] == ["invalid_model", None]

    upstream = Upstream(default=err(400, "Invalid request parameters"))
    exc = await run_failing(upstream, chain(9))
    assert (exc.error_type, exc.status, exc.retryable) == ("bad_request", 400, False)
    assert len(upstream.requests) == 1


async def test_an_unknown_id_is_dropped_and_the_rest_of_its_window_asked_again() -> None:
    upstream = Upstream([err(400, "vendor/model-1 is not a valid model ID"), ok()])
    result = await run(upstream, chain(6))
    assert upstream.windows == [
        ["vendor/model-0", "vendor/model-1", "vendor/model-2", "vendor/model-3"],
        ["vendor/model-0", "vendor/model-2", "vendor/model-3", "vendor/model-4"],
    ]
    assert result.attempts[0].failed_models == ("vendor/model-1",)

    upstream = Upstream(default=err(400, "something/else is not a valid model ID"))
    exc = await run_failing(upstream, chain(6))  # nothing named: the window goes as a whole
    assert upstream.windows == [[f"vendor/model-{i}" for i in range(4)],
                                ["vendor/model-4", "vendor/model-5"]]
    assert (exc.error_type, exc.retryable) == ("invalid_model", False)


@pytest.mark.parametrize(
    ("status", "error_type"), [(401, "auth"), (402, "insufficient_credits")]
)
async def test_auth_and_credit_failures_stop_everything_at_once(
    status: int, error_type: str
) -> None:
    upstream = Upstream(default=err(status, "nope"))
    clock = FakeTime()
    exc = await run_failing(upstream, chain(9), clock)
    assert len(upstream.requests) == 1
    assert clock.sleeps == []
    assert (exc.error_type, exc.status, exc.retryable) == (error_type, status, False)
    assert len(exc.attempts) == 1


# --- retries -----------------------------------------------------------------------------------


async def test_429_honours_retry_after_seconds() -> None:
    upstream = Upstream([err(429, "slow down", headers={"Retry-After": "3"}), ok()])
    clock = FakeTime()
    result = await run(upstream, chain(1), clock)
    assert clock.sleeps == [3.0]  # max(3, jitter <= 0.25)
    assert result.attempts[0].retry_after_s == 3.0
    assert result.attempts[0].error_type == "rate_limited"


async def test_retry_after_as_http_date() -> None:
    header = formatdate(time.time() + 5, usegmt=True)
    upstream = Upstream([err(503, "busy", headers={"Retry-After": header}), ok()])
    clock = FakeTime()
    await run(upstream, chain(1), clock)
    assert 3.0 <= clock.sleeps[0] <= 5.5


async def test_5xx_backoff_grows_exponentially_up_to_the_cap() -> None:
    upstream = Upstream([err(500), err(502), err(503), err(529), ok()])
    clock = FakeTime()
    await run(upstream, chain(1), clock, rng=TopRng(),
              client_options={"max_retries": 4, "backoff_base_s": 0.5, "backoff_cap_s": 3.0})
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0]


async def test_seeded_jitter_stays_under_each_ceiling() -> None:
    upstream = Upstream(default=err(502))
    clock = FakeTime()
    await run_failing(upstream, chain(1), clock,
                      client_options={"max_retries": 6, "backoff_base_s": 0.25,
                                      "backoff_cap_s": 4.0})
    assert len(clock.sleeps) == 6
    for n, slept in enumerate(clock.sleeps):
        assert 0 <= slept <= min(4.0, 0.25 * 2**n)


async def test_retry_after_past_the_deadline_is_not_slept_on() -> None:
    upstream = Upstream(default=err(429, "slow down", headers={"Retry-After": "10"}))
    clock = FakeTime()
    exc = await run_failing(upstream, chain(1), clock, deadline=clock.now + 5)
    assert clock.sleeps == []
    assert len(upstream.requests) == 1
    assert (exc.error_type, exc.retryable) == ("rate_limited", True)


async def test_retry_after_beyond_the_ceiling_moves_to_the_next_window() -> None:
    upstream = Upstream([err(429, "capacity", headers={"Retry-After": "40"}), ok()])
    clock = FakeTime()
    result = await run(upstream, chain(6), clock)
    assert clock.sleeps == []
    assert upstream.windows[1] == ["vendor/model-4", "vendor/model-5"]
    assert result.model_served == "vendor/model-4"


async def test_deadline_passed_before_a_window_starts() -> None:
    clock = FakeTime()
    upstream = Upstream(default=err(404))
    exc = await run_failing(upstream, chain(5), clock, deadline=clock.now - 0.001)
    assert upstream.requests == []
    assert (exc.error_type, exc.retryable, exc.attempts) == ("deadline_exceeded", True, ())

    def slow_404(request: httpx.Request) -> httpx.Response:
        clock.now += 10
        return err(404)(request)

    upstream = Upstream(default=slow_404)
    exc = await run_failing(upstream, chain(9), clock, deadline=clock.now + 15)
    assert len(upstream.requests) == 2
    assert exc.error_type == "deadline_exceeded"
    assert len(exc.attempts) == 2


async def test_attempt_timeout_is_bounded_by_the_deadline() -> None:
    upstream = Upstream([ok()])
    clock = FakeTime()
    await run(upstream, chain(1), clock, deadline=clock.now + 3.0,
              client_options={"attempt_timeout_s": 60.0, "connect_timeout_s": 5.0})
    timeout = upstream.requests[0].extensions["timeout"]
    assert timeout["read"] == pytest.approx(3.0)
    assert timeout["connect"] == pytest.approx(3.0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    retry_afters=st.lists(st.none() | st.integers(min_value=0, max_value=60), min_size=1,
                          max_size=12),
    budget=st.floats(min_value=0.01, max_value=90),
    size=st.integers(min_value=1, max_value=9),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_never_sleeps_past_the_deadline_or_the_retry_after_ceiling(
    retry_afters: list[int | None], budget: float, size: int, seed: int
) -> None:
    clock = FakeTime()
    deadline = clock.now + budget
    replies: list[Reply | Exception] = [
        err(429, "busy", headers={} if ra is None else {"Retry-After": str(ra)})
        for ra in retry_afters
    ]
    upstream = Upstream(replies, default=ok())
    slept_until: list[float] = []

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        slept_until.append(clock.now)

    async def scenario() -> None:
        client = OpenRouterClient(
            OpenRouterSettings(base_url=BASE, max_retries=3, backoff_cap_s=8.0,
                               max_retry_after_s=30.0),
            transport=httpx.MockTransport(upstream.handler), sleep=sleep,
            rng=random.Random(seed), clock=clock.clock,
        )
        async with client:
            try:
                await client.complete(request(chain(size)), deadline=deadline)
            except UpstreamError as exc:
                assert exc.error_type in ("rate_limited", "deadline_exceeded")
                assert exc.retryable

    asyncio.run(scenario())
    assert all(0 <= s <= 30.0 for s in clock.sleeps)
    assert all(t < deadline for t in slept_until)


# --- failure shapes ----------------------------------------------------------------------------


async def test_http_200_with_error_body_is_retried_by_its_code() -> None:
    upstream = Upstream([
        err(429, "Rate limit exceeded", http_status=200, metadata={"error_type": "rate_limit"}),
        err(404, "gone", http_status=200),
        ok(),
    ])
    result = await run(upstream, chain(5))
    first, second, third = result.attempts
    assert (first.status, first.error_type) == (429, "upstream_error_200")
    assert upstream.windows[0] == upstream.windows[1]  # 429 → retried in the same window
    assert (second.status, second.error_type) == (404, "upstream_error_200")
    assert upstream.windows[2] == ["vendor/model-4"]  # 404 → next window
    assert third.error_type is None


async def test_finish_reason_error_is_retried() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={
            "model": "vendor/model-0", "choices": [{
                "index": 0, "finish_reason": "error", "message": {"content": "Par"},
                "error": {"code": 502, "message": "Provider disconnected"}}]})

    upstream = Upstream([broken, ok()])
    clock = FakeTime()
    result = await run(upstream, chain(1), clock)
    assert [a.error_type for a in result.attempts] == ["finish_error", None]
    assert result.attempts[0].status == 502
    assert len(clock.sleeps) == 1
    assert result.content == "Paris"


async def test_non_json_bodies() -> None:
    upstream = Upstream([raw(502, b"<html>Bad Gateway</html>"), raw(200, b"not json"), ok()])
    result = await run(upstream, chain(1), client_options={"max_retries": 2})
    assert [(a.status, a.error_type) for a in result.attempts] == [
        (502, "server_error"), (200, "invalid_response"), (200, None)]
    assert "non-JSON" in (result.attempts[0].error or "")


@pytest.mark.parametrize(
    ("exc", "error_type", "unknown"),
    [(httpx.ConnectError("connection refused"), "connection_error", False),  # nothing was sent
     (httpx.ReadTimeout("timed out"), "timeout", True),  # sent, no answer: may be billed
     (httpx.RemoteProtocolError("peer closed"), "network", True)],
)
async def test_transport_errors_are_retried_and_say_whether_they_may_be_billed(
    exc: Exception, error_type: str, unknown: bool
) -> None:
    upstream = Upstream([exc, ok()])
    result = await run(upstream, chain(1))
    first = result.attempts[0]
    assert (first.status, first.error_type, first.outcome_unknown) == (None, error_type, unknown)
    assert first.failed_models == ("vendor/model-0",)
    assert result.attempts[1].error_type is None and not result.attempts[1].outcome_unknown


async def test_a_hung_attempt_is_cut_at_the_attempt_timeout() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    client = OpenRouterClient(
        OpenRouterSettings(base_url=BASE, attempt_timeout_s=0.05, max_retries=0),
        transport=httpx.MockTransport(hang),
    )
    async with client:
        with pytest.raises(UpstreamError) as info:
            await client.complete(request(chain(1)))
    assert info.value.error_type == "timeout"
    assert 40 <= info.value.attempts[0].latency_ms < 1000


# --- hooks -------------------------------------------------------------------------------------


async def test_the_attempt_hook_can_stop_the_call_with_its_own_error() -> None:
    async def stop_after_a_timeout(attempt: Attempt) -> None:
        if attempt.outcome_unknown:
            raise StopCalls("budget_exceeded", "cannot cover another attempt")

    upstream = Upstream([httpx.ReadTimeout("timed out"), ok()])
    exc = await run_failing(upstream, chain(2), on_attempt=stop_after_a_timeout,
                            client_options={"max_retries": 2})
    assert len(upstream.requests) == 1  # no retry after the stop
    assert (exc.error_type, exc.message, exc.retryable) == ("budget_exceeded", "cannot cover another attempt",
                                                             False)
    assert [a.error_type for a in exc.attempts] == ["timeout"]


async def test_on_attempt_sees_every_attempt_in_order() -> None:
    seen: list[Attempt] = []

    async def on_attempt(attempt: Attempt) -> None:
        seen.append(attempt)

    upstream = Upstream([err(503), err(429), err(404), httpx.ConnectError("x"), ok()])
    result = await run(upstream, chain(5), on_attempt=on_attempt,
                       client_options={"max_retries": 2})
    assert [a.status for a in seen] == [503, 429, 404, None, 200]
    assert seen == list(result.attempts)

    seen.clear()
    exc = await run_failing(Upstream(default=err(502)), chain(1), on_attempt=on_attempt)
    assert seen == list(exc.attempts)
    assert len(seen) == 3  # first try + max_retries (2)


# --- secrets -----------------------------------------------------------------------------------


def _echo_key(status: int, http_status: int | None = None) -> Reply:
    return err(status, f"bad key {KEY}", http_status=http_status,
               metadata={"raw": f"upstream said Authorization: Bearer {KEY}"})


FAILURES: list[Reply | Exception] = [
    _echo_key(401), _echo_key(402), _echo_key(400), _echo_key(403), _echo_key(404),
    _echo_key(408), _echo_key(429), _echo_key(500), _echo_key(503), _echo_key(524),
    _echo_key(502, http_status=200),
    lambda r: httpx.Response(200, json={"choices": [{"finish_reason": "error", "error": {
        "code": 502, "message": f"oops {KEY}"}}]}),
    raw(502, f"<html>{KEY}</html>".encode()),
    raw(200, f"garbage {KEY}".encode()),
    httpx.ConnectError(f"refused {KEY}"),
    httpx.ReadTimeout(f"timeout {KEY}"),
]


@pytest.mark.parametrize("failure", FAILURES)
async def test_the_api_key_never_leaks(
    failure: Reply | Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream = Upstream(default=failure)
    clock = FakeTime()
    async with make_client(upstream, clock, max_retries=1) as client:
        with pytest.raises(UpstreamError) as info:
            await client.complete(request(chain(5)))
        assert KEY not in repr(client)
    exc = info.value
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent
    exposed = [str(exc), repr(exc), exc.message, caplog.text,
               *(orjson.dumps(a.to_dict()).decode() for a in exc.attempts), repr(exc.attempts)]
    for text in exposed:
        assert KEY not in text
    assert "openrouter attempt" in caplog.text  # the per-attempt debug line was emitted
    assert exc.attempts and all(a.error and len(a.error) <= 300 for a in exc.attempts)


def test_upstream_error_survives_copying_with_its_fields() -> None:
    attempt = Attempt("vendor/model-0", (), 429, "rate_limited", "busy", 12, retry_after_s=3.0)
    exc = UpstreamError("rate_limited", "busy", 429, attempts=(attempt,))
    clone = copy.copy(exc)  # copy, like pickle, rebuilds the exception through __reduce__
    assert (clone.error_type, clone.message, clone.status, clone.retryable, clone.attempts) == (
        "rate_limited", "busy", 429, True, (attempt,))
    assert str(clone) == str(exc) == "rate_limited: busy"
