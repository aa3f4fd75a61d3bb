"""Errors a producer can get, each saying what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class RouteqError(Exception):
    """Base class of every error routeq raises to producers."""


class InvalidJob(RouteqError, ValueError):
    """The job does not match the wire contract; nothing was enqueued."""


class InvalidFeedback(RouteqError, ValueError):
    """A feedback score or label that routeq cannot take; nothing was recorded."""


class UnknownJob(RouteqError, LookupError):
    """No record of this job id (never submitted, not finished yet, or too long ago)."""


class QueueFull(RouteqError):
    """The queue is at its configured maximum depth (backpressure); nothing was enqueued."""


class ResultTimeout(RouteqError, TimeoutError):
    """No result arrived within the wait; the job may still finish later."""


class RedisUnavailable(RouteqError, ConnectionError):
    """Redis did not answer within the client's timeout."""


def describe_validation_error(exc: ValidationError, *, prefix: str = "") -> str:
    """One line per problem, naming the field path: ``context.max_latency_ms: Input should be …``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (misspelt? free-form data goes in context.tags or metadata)"
        lines.append(f"{prefix}{loc}: {msg}")
    return "; ".join(lines)
