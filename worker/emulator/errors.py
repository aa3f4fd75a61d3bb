"""OpenRouter error bodies, with the messages and metadata seen in captured responses.

Every body carries ``error.code`` (the HTTP status) and, where OpenRouter types the error,
``error.metadata.error_type``, so clients written against either documented form work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.emulator.http import Response
from worker.emulator.wire import json_response

USER_ID = "user_2routeqEmulator0000000000"
_ROUTING_DOCS = "To learn more about provider routing, visit: https://openrouter.ai/docs/provider-routing"


@dataclass(frozen=True, slots=True)
class ApiError:
    """One error as OpenRouter reports it; ``retry_after_s`` becomes a Retry-After header."""

    status: int
    message: str
    metadata: Mapping[str, Any] | None = field(default=None)
    retry_after_s: int | None = None

    @property
    def error_type(self) -> str:
        meta = self.metadata or {}
        kind = meta.get("error_type")
        return kind if isinstance(kind, str) else str(self.status)

    def body(self, previous_errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message}
        metadata = dict(self.metadata or {})
        if previous_errors:
            metadata["previous_errors"] = previous_errors
        if metadata:
            error["metadata"] = metadata
        return {"error": error, "user_id": USER_ID}

    def response(self, previous_errors: list[dict[str, Any]] | None = None) -> Response:
        headers = [("Retry-After", str(self.retry_after_s))] if self.retry_after_s else []
        return json_response(self.status, self.body(previous_errors), headers)


class Rejected(Exception):
    """Raised to stop handling a request with ``error`` as the whole answer."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, {"error_type": "invalid_request"})


def unauthorized(message: str) -> ApiError:
    # Captured 401 bodies have no metadata: {"error":{"message":...,"code":401}}.
    return ApiError(401, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message, {"error_type": "not_found"})


def no_endpoints(capability: str) -> ApiError:
    """Every candidate model was filtered out for lack of ``capability``."""
    return not_found(f"No endpoints found that support {capability}. {_ROUTING_DOCS}")


def provider_error(model_id: str, provider: str, status: int) -> ApiError:
    """A 5xx from the upstream provider (or from OpenRouter itself for 500)."""
    if status == 500:
        return ApiError(500, "Internal Server Error", {"error_type": "server"})
    if status == 503:
        return ApiError(503, "Service temporarily unavailable", {"error_type": "provider_overloaded"})
    if status == 504:
        return ApiError(504, "Provider timed out", {"error_type": "timeout", "provider_name": provider})
    raw = {"error": {"message": f"{model_id} is currently unavailable", "type": "server_error"}}
    return ApiError(
        status,
        "Provider returned error",
        {"raw": raw, "provider_name": provider, "is_byok": False, "error_type": "provider_unavailable"},
    )


def rate_limited(model_id: str, provider: str, retry_after_s: int) -> ApiError:
    raw = (
        f"{model_id} is temporarily rate-limited upstream. Please retry shortly, or add your own "
        "key to accumulate your rate limits: https://openrouter.ai/settings/integrations"
    )
    return ApiError(
        429,
        "Provider returned error",
        {"raw": raw, "provider_name": provider, "is_byok": False, "error_type": "rate_limit_exceeded"},
        retry_after_s=retry_after_s,
    )


def timed_out() -> ApiError:
    return ApiError(408, "Operation timed out. Please try again later.", {"error_type": "timeout"})


def insufficient_credits(requested: int | None, affordable: int) -> ApiError:
    if requested is None:
        message = "Insufficient credits. Add more using https://openrouter.ai/credits"
    else:
        message = (
            "This request requires more credits, or fewer max_tokens. You requested up to "
            f"{requested} tokens, but can only afford {affordable}. To increase, visit "
            "https://openrouter.ai/settings/credits and add more credits"
        )
    return ApiError(402, message, {"error_type": "payment_required"})


def context_too_long(context_length: int, prompt_tokens: int, completion_tokens: int) -> ApiError:
    return ApiError(
        400,
        f"This endpoint's maximum context length is {context_length} tokens. However, you "
        f"requested about {prompt_tokens + completion_tokens} tokens ({prompt_tokens} of text "
        f"input, {completion_tokens} in the output). Please reduce the length of either one, "
        'or use the "middle-out" transform to compress your prompt automatically.',
        {"error_type": "context_length_exceeded"},
    )
