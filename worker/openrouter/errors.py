"""Failure classification: what a failed attempt means for the rest of the chain.

Every failure gets an ``error_type`` (stable vocabulary for results and the circuit breaker)
and a disposition:

- RETRY: transient (408, 429, 5xx, 524, 529, timeouts, network errors, 200-with-error bodies
  carrying such a code, ``finish_reason: "error"``). Retry the same window, then move on.
- NEXT_WINDOW: this window's models cannot serve the request (404, 403, a 400 that names the
  model: unknown id or context/token limit). Retrying is pointless, other models may work.
- STOP: every model would fail the same way: 401 (key), 402 (credits), and a 400/413/422 about
  the request itself. Hammering the remaining chain would only burn requests.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from worker.error_kinds import retryable

from .models import Attempt

MAX_ERROR_CHARS = 300

_INVALID_MODEL_CODES = frozenset({"model_not_found", "wrong_endpoint"})
_TOO_LONG_CODES = frozenset(
    {"context_length_exceeded", "max_tokens_exceeded", "token_limit_exceeded"}
)
_TOO_LONG_PHRASES = ("context length", "context_length", "context window", "maximum context")


class Disposition(enum.Enum):
    RETRY = "retry"
    NEXT_WINDOW = "next_window"
    STOP = "stop"


@dataclass(frozen=True)
class Failure:
    """A classified failed attempt (internal: the client turns it into an Attempt)."""

    error_type: str
    status: int | None
    message: str
    disposition: Disposition
    retry_after_s: float | None = None
    failed_models: tuple[str, ...] = ()

    @property
    def retryable(self) -> bool:
        return self.disposition is Disposition.RETRY


class UpstreamError(Exception):
    """The whole chain failed; ``retryable`` tells the job layer whether to try again later."""

    def __init__(
        self,
        error_type: str,
        message: str,
        status: int | None = None,
        attempts: tuple[Attempt, ...] = (),
    ) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.status = status
        self.attempts = attempts

    @property
    def retryable(self) -> bool:
        return retryable(self.error_type)

    def __reduce__(self) -> tuple[Any, ...]:
        # Copies (and pickles, for libraries that do that) rebuild it with all its fields.
        return (type(self), (self.error_type, self.message, self.status, self.attempts))


class StopCalls(Exception):
    """Raised by an ``on_attempt`` hook to end the call now (e.g. a retry nobody can pay for)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def classify_status(
    status: int, message: str = "", codes: Iterable[str] = ()
) -> tuple[str, Disposition]:
    """Map an HTTP status (or ``error.code``) to ``(error_type, disposition)``.

    ``codes`` are OpenRouter's typed hints (``metadata.error_type``, ``availability.code``);
    they only refine a 400 into "this model cannot do it" versus "the request is invalid".
    """
    if status == 401:
        return "auth", Disposition.STOP
    if status == 402:
        return "insufficient_credits", Disposition.STOP
    if status == 400:
        return _classify_400(message, frozenset(codes))
    if status == 403:
        # Moderation flags and region limits are per model/provider; OpenRouter itself falls
        # back to the next model on them.
        return "forbidden", Disposition.NEXT_WINDOW
    if status == 404:
        return "not_found", Disposition.NEXT_WINDOW
    if status in (413, 422):
        return "bad_request", Disposition.STOP
    if status in (408, 504, 524):
        return "timeout", Disposition.RETRY
    if status == 429:
        return "rate_limited", Disposition.RETRY
    if status >= 500:
        return "server_error", Disposition.RETRY
    if status >= 400:
        return "client_error", Disposition.NEXT_WINDOW
    return "unexpected_status", Disposition.NEXT_WINDOW


def _classify_400(message: str, codes: frozenset[str]) -> tuple[str, Disposition]:
    text = message.lower()
    if codes & _INVALID_MODEL_CODES or "not a valid model" in text:
        return "invalid_model", Disposition.NEXT_WINDOW
    if codes & _TOO_LONG_CODES or any(p in text for p in _TOO_LONG_PHRASES):
        return "context_length_exceeded", Disposition.NEXT_WINDOW
    return "bad_request", Disposition.STOP


@dataclass(frozen=True)
class TransportFailure:
    """What a transport exception says: its error type, and whether the request may have reached
    OpenRouter (and so may be billed although no answer came back)."""

    error_type: str
    message: str
    outcome_unknown: bool


def classify_exception(exc: BaseException) -> TransportFailure:
    """Map a transport-level exception; all are retryable.

    A connection that was refused or never opened sent nothing (``connection_error``, known not
    billed). A timeout or a connection lost after the request went out leaves the outcome unknown.
    """
    detail = str(exc)
    message = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if isinstance(exc, _NOT_SENT):
        return TransportFailure("connection_error", message, outcome_unknown=False)
    if isinstance(exc, TimeoutError | httpx.TimeoutException | aiohttp.ServerTimeoutError):
        return TransportFailure("timeout", message, outcome_unknown=True)
    if isinstance(exc, httpx.DecodingError | aiohttp.ContentTypeError | aiohttp.ClientPayloadError):
        return TransportFailure("invalid_response", message, outcome_unknown=True)
    return TransportFailure("network", message, outcome_unknown=True)


#: Failures before the request left: nothing reached OpenRouter, nothing can be billed.
_NOT_SENT = (
    httpx.ConnectError, httpx.ConnectTimeout, ConnectionRefusedError,
    aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError,
)





def redact(text: str, secret: str | None) -> str:
    """Remove the API key from text that might echo it (upstream bodies, exception text)."""
    if secret and secret in text:
        return text.replace(secret, "[redacted]")
    return text


def shorten(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
