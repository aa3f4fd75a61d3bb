"""Async OpenRouter client: one pooled httpx.AsyncClient per worker process.

A request's chain is walked in windows of four models: one HTTP call sends ``model`` plus up to
three ``models`` so OpenRouter falls back natively (no extra round trip), and the client only
steps in when a whole window fails. A window is retried on transient failures with jittered
backoff, then abandoned for the next one; failures that every model would share (bad key, no
credits, invalid request) end the call at once. A 400 naming one unknown model id fails the whole
window, so the window's other models are put back at the head of the chain without it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any

import httpx
import orjson

from .backoff import RetryPolicy
from .errors import (
    Disposition,
    Failure,
    StopCalls,
    UpstreamError,
    classify_exception,
    redact,
    shorten,
)
from .models import Attempt, ChatRequest, Completion
from .poster import TRANSPORT_ERRORS, AiohttpPoster, HttpxPoster, Poster
from .response import models_before, parse_response
from .settings import OpenRouterSettings

logger = logging.getLogger("routeq.openrouter")

WINDOW_SIZE = 4  # ``model`` + at most 3 ``models`` (OpenRouter rejects more)

Sleep = Callable[[float], Awaitable[None]]
#: Awaited after every HTTP attempt; may raise :class:`StopCalls` to end the call there.
OnAttempt = Callable[[Attempt], Awaitable[None]]


class OpenRouterClient:
    """Completes ChatRequests against OpenRouter with windowed fallback and bounded retries."""

    def __init__(
        self,
        settings: OpenRouterSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._policy = RetryPolicy.from_settings(settings)
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._url = settings.chat_url
        headers = _headers(settings)
        self._poster: Poster = (
            HttpxPoster(self._url, headers, transport) if transport is not None
            else AiohttpPoster(self._url, headers, max_connections=settings.max_connections)
        )

    def __repr__(self) -> str:
        return f"OpenRouterClient(url={self._url!r})"

    async def __aenter__(self) -> OpenRouterClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._poster.aclose()

    async def complete(
        self,
        request: ChatRequest,
        *,
        deadline: float | None = None,
        on_attempt: OnAttempt | None = None,
    ) -> Completion:
        """Return the first completion the chain yields, or raise UpstreamError.

        ``deadline`` is a ``time.monotonic()`` instant; ``on_attempt`` is awaited after every
        HTTP attempt, successful or not, and may end the call by raising :class:`StopCalls`.
        """
        attempts: list[Attempt] = []
        pending = deque(request.chain)
        while pending:
            window = tuple(pending.popleft() for _ in range(min(WINDOW_SIZE, len(pending))))
            outcome = await self._run_window(request, window, deadline, attempts, on_attempt)
            if isinstance(outcome, Completion):
                return outcome
            if outcome.error_type == "invalid_model":
                # Only the named ids are unknown: give the rest of the window another call.
                rest = [m for m in window if m not in outcome.failed_models]
                if len(rest) < len(window):
                    pending.extendleft(reversed(rest))
        raise _exhausted(attempts)

    async def _run_window(
        self,
        request: ChatRequest,
        window: tuple[str, ...],
        deadline: float | None,
        attempts: list[Attempt],
        on_attempt: OnAttempt | None,
    ) -> Completion | Failure:
        # A copy of the right size: orjson's own bytes keep its 4 KiB buffer, and the body lives
        # as long as the call (retries resend it), so 1,000 calls in flight held 4 MiB of slack.
        content = bytes(memoryview(orjson.dumps(_body(request, window), default=_jsonable)))
        retry = 0
        while True:
            self._check_deadline(deadline, attempts)
            outcome, attempt = await self._attempt(window, content, deadline)
            attempts.append(attempt)
            if on_attempt is not None:
                try:
                    await on_attempt(attempt)
                except StopCalls as stop:
                    raise UpstreamError(stop.error_type, stop.message, attempt.status,
                                        attempts=tuple(attempts)) from None
            if isinstance(outcome, Completion):
                return replace(outcome, attempts=tuple(attempts))
            if outcome.disposition is Disposition.STOP:
                raise UpstreamError(
                    outcome.error_type, attempt.error or outcome.error_type, outcome.status,
                    attempts=tuple(attempts),
                )
            if outcome.disposition is Disposition.NEXT_WINDOW:
                return outcome
            delay = self._policy.wait(
                retry, outcome.retry_after_s, self._rng, self._time_left(deadline)
            )
            if delay is None:
                return outcome
            await self._sleep(delay)
            retry += 1

    async def _attempt(
        self, window: tuple[str, ...], content: bytes, deadline: float | None
    ) -> tuple[Completion | Failure, Attempt]:
        budget = self._settings.attempt_timeout_s
        left = self._time_left(deadline)
        if left is not None:
            budget = min(budget, left)
        outcome: Completion | Failure
        started = self._clock()
        unknown = False
        try:
            async with asyncio.timeout(budget):
                response = await self._poster.post(
                    content, timeout=budget, connect_timeout=min(self._settings.connect_timeout_s, budget)
                )
        except TRANSPORT_ERRORS as exc:
            failure = classify_exception(exc)
            unknown = failure.outcome_unknown
            outcome = Failure(
                failure.error_type, None, failure.message, Disposition.RETRY, failed_models=window
            )
            status: int | None = None
        else:
            status = response.status
            outcome = parse_response(status, response.headers, response.body, window)
        latency_ms = max(0, round((self._clock() - started) * 1000))
        attempt = self._record(window, outcome, status, latency_ms, unknown)
        logger.debug(
            "openrouter attempt model=%s fallbacks=%d http_status=%s status=%s error_type=%s "
            "latency_ms=%d served=%s",
            attempt.model, len(attempt.models), status, attempt.status, attempt.error_type,
            latency_ms, attempt.served_model,
        )
        return outcome, attempt

    def _record(
        self,
        window: tuple[str, ...],
        outcome: Completion | Failure,
        http_status: int | None,
        latency_ms: int,
        outcome_unknown: bool = False,
    ) -> Attempt:
        if isinstance(outcome, Completion):
            return Attempt(
                model=window[0], models=window[1:], status=http_status, error_type=None,
                error=None, latency_ms=latency_ms, served_model=outcome.model_served,
                failed_models=models_before(window, outcome.model_served),
            )
        return Attempt(
            model=window[0], models=window[1:], status=outcome.status,
            error_type=outcome.error_type,
            error=shorten(redact(outcome.message, self._settings.api_key)),
            latency_ms=latency_ms, retry_after_s=outcome.retry_after_s,
            failed_models=outcome.failed_models, outcome_unknown=outcome_unknown,
        )

    def _time_left(self, deadline: float | None) -> float | None:
        return None if deadline is None else deadline - self._clock()

    def _check_deadline(self, deadline: float | None, attempts: list[Attempt]) -> None:
        left = self._time_left(deadline)
        if left is not None and left <= 0:
            last = attempts[-1] if attempts else None
            raise UpstreamError(
                "deadline_exceeded",
                f"deadline passed after {len(attempts)} attempt(s)",
                last.status if last else None,
                attempts=tuple(attempts),
            )


def _body(request: ChatRequest, window: tuple[str, ...]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": window[0]}
    if len(window) > 1:
        body["models"] = list(window[1:])
    body["messages"] = list(request.messages)
    body["max_tokens"] = request.max_tokens
    if request.provider is not None:
        body["provider"] = request.provider
    body.update(request.params)
    if request.user is not None:
        body["user"] = request.user
    return body


def _jsonable(value: object) -> object:
    """orjson fallback for read-only mappings and other sequences callers may pass."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _headers(settings: OpenRouterSettings) -> dict[str, str]:
    return {"Content-Type": "application/json", **settings.headers()}


def _exhausted(attempts: list[Attempt]) -> UpstreamError:
    if not attempts:
        return UpstreamError("no_models", "the model chain is empty")
    last = attempts[-1]
    return UpstreamError(
        last.error_type or "upstream_error",
        f"all models failed after {len(attempts)} attempt(s); last: {last.error}",
        last.status,
        attempts=tuple(attempts),
    )
