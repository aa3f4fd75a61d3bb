"""parse_response: success fields, exact cost, and every documented failure shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.openrouter.errors import Disposition, Failure
from worker.openrouter.models import Completion
from worker.openrouter.response import parse_response

NOW_EPOCH = 1_788_825_600.0
WINDOW = ("openai/gpt-4o-mini", "anthropic/claude-haiku-4.5", "meta-llama/llama-3.3-70b")

# Reference §2.2, a captured success body.
CAPTURED: dict[str, Any] = {
    "id": "gen-1764926476-0N0195qHFzGljvYKVijc",
    "provider": "OpenAI",
    "model": "openai/gpt-4o-mini",
    "object": "chat.completion",
    "created": 1764926476,
    "choices": [{
        "logprobs": None, "finish_reason": "stop", "native_finish_reason": "stop", "index": 0,
        "message": {"role": "assistant", "content": "TypeScript enhances ...", "refusal": None,
                    "reasoning": None},
    }],
    "system_fingerprint": "fp_aa07c96156",
    "usage": {
        "prompt_tokens": 29, "completion_tokens": 33, "total_tokens": 62,
        "cost": 0.00002415, "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0},
        "cost_details": {"upstream_inference_cost": None},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "some_future_field": {"ignored": True},
}


def parse(status: int, body: Any, headers: dict[str, str] | None = None) -> Completion | Failure:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_response(status, httpx.Headers(headers or {}), content, WINDOW,
                          now_epoch_s=NOW_EPOCH)


def failure(status: int, body: Any, headers: dict[str, str] | None = None) -> Failure:
    result = parse(status, body, headers)
    assert isinstance(result, Failure), result
    return result


def test_captured_success_body() -> None:
    result = parse(200, CAPTURED)
    assert isinstance(result, Completion)
    assert result.content == "TypeScript enhances ..."
    assert result.message["role"] == "assistant"
    assert result.finish_reason == "stop"
    assert result.model_served == "openai/gpt-4o-mini"
    assert result.provider == "OpenAI"
    assert result.generation_id == "gen-1764926476-0N0195qHFzGljvYKVijc"
    assert (result.prompt_tokens, result.completion_tokens) == (29, 33)
    assert result.cost_nano == 24150  # 0.00002415 USD, exactly


def test_tool_call_message_is_kept_whole() -> None:
    tool_calls = [{"id": "call_abc123", "type": "function",
                   "function": {"name": "search", "arguments": "{\"q\": [\"Joyce\"]}"}}]
    body = {**CAPTURED, "choices": [{"index": 0, "finish_reason": "tool_calls",
                                     "message": {"role": "assistant", "content": None,
                                                 "tool_calls": tool_calls}}]}
    result = parse(200, body)
    assert isinstance(result, Completion)
    assert result.content is None
    assert result.finish_reason == "tool_calls"
    assert result.message["tool_calls"] == tool_calls


def test_missing_optional_fields_degrade_gracefully() -> None:
    body = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    result = parse(200, body, {"X-Generation-Id": "gen-from-header"})
    assert isinstance(result, Completion)
    assert result.cost_nano is None
    assert result.model_served == WINDOW[0]
    assert result.provider is None
    assert result.generation_id == "gen-from-header"
    assert (result.prompt_tokens, result.completion_tokens) == (0, 0)


@given(nano=st.integers(min_value=0, max_value=10**14))
def test_cost_round_trips_to_exact_nano(nano: int) -> None:
    usd = float(Decimal(nano) / 10**9)  # what a JSON number with <=9 decimals parses to
    result = parse(200, {**CAPTURED, "usage": {**CAPTURED["usage"], "cost": usd}})
    assert isinstance(result, Completion)
    assert result.cost_nano == nano


def test_sub_nano_cost_rounds_half_even() -> None:
    body = {**CAPTURED, "usage": {"cost": 0.0000000025}}  # 2.5 nano
    result = parse(200, body)
    assert isinstance(result, Completion)
    assert result.cost_nano == 2


@pytest.mark.parametrize(
    ("code", "status", "disposition"),
    [(429, 429, Disposition.RETRY), ("503", 503, Disposition.RETRY),
     (None, 502, Disposition.RETRY), ("server_error", 502, Disposition.RETRY),
     (404, 404, Disposition.NEXT_WINDOW), (401, 401, Disposition.STOP)],
)
def test_http_200_with_error_body_is_a_failure(
    code: object, status: int, disposition: Disposition
) -> None:
    error: dict[str, Any] = {"message": "This content was flagged"}
    if code is not None:
        error["code"] = code
    result = failure(200, {"error": error, "user_id": "user_x"})
    assert result.error_type == "upstream_error_200"
    assert result.status == status
    assert result.disposition is disposition
    assert result.failed_models == WINDOW


def test_finish_reason_error_is_a_retryable_failure() -> None:
    body = {**CAPTURED, "model": WINDOW[1], "choices": [{
        "index": 0, "finish_reason": "error", "message": {"role": "assistant", "content": "par"},
        "error": {"code": 502, "message": "Provider disconnected",
                  "metadata": {"error_type": "provider_unavailable"}}}]}
    result = failure(200, body)
    assert result.error_type == "finish_error"
    assert result.retryable
    assert result.status == 502
    assert result.message == "Provider disconnected"
    assert result.failed_models == WINDOW[:2]  # served model broke; the one before it was skipped


@pytest.mark.parametrize(
    ("status", "error_type", "disposition"),
    [(502, "server_error", Disposition.RETRY), (503, "server_error", Disposition.RETRY),
     (429, "rate_limited", Disposition.RETRY), (401, "auth", Disposition.STOP),
     (404, "not_found", Disposition.NEXT_WINDOW), (200, "invalid_response", Disposition.RETRY)],
)
def test_non_json_body(status: int, error_type: str, disposition: Disposition) -> None:
    result = failure(status, b"<html><body>Bad gateway</body></html>")
    assert (result.error_type, result.status, result.disposition) == (
        error_type, status, disposition)
    assert "non-JSON" in result.message


def test_json_without_choices_or_error_is_invalid() -> None:
    assert failure(200, {"id": "gen-1"}).error_type == "invalid_response"
    assert failure(200, [1, 2]).error_type == "invalid_response"


@pytest.mark.parametrize(
    ("body", "error_type", "disposition"),
    [
        ({"error": {"code": 400, "message": "foo/bar is not a valid model ID"}},
         "invalid_model", Disposition.NEXT_WINDOW),
        ({"error": {"code": 400, "message": "Too long",
                    "metadata": {"error_type": "context_length_exceeded"}}},
         "context_length_exceeded", Disposition.NEXT_WINDOW),
        ({"error": {"message": "gone", "error_type": "invalid_request", "http_status": 400,
                    "availability": {"code": "model_not_found"}}},
         "invalid_model", Disposition.NEXT_WINDOW),
        ({"error": {"code": 400, "message": "models array must have 3 items or fewer"}},
         "bad_request", Disposition.STOP),
        ({"error": {"code": 400, "message": "Invalid request parameters"}},
         "bad_request", Disposition.STOP),
    ],
)
def test_400_separates_model_problems_from_request_problems(
    body: dict[str, Any], error_type: str, disposition: Disposition
) -> None:
    result = failure(400, body)
    assert (result.error_type, result.disposition) == (error_type, disposition)


@pytest.mark.parametrize(
    ("status", "error_type", "disposition"),
    [(402, "insufficient_credits", Disposition.STOP), (403, "forbidden", Disposition.NEXT_WINDOW),
     (408, "timeout", Disposition.RETRY), (413, "bad_request", Disposition.STOP),
     (500, "server_error", Disposition.RETRY), (504, "timeout", Disposition.RETRY),
     (524, "timeout", Disposition.RETRY), (529, "server_error", Disposition.RETRY)],
)
def test_status_classification(status: int, error_type: str, disposition: Disposition) -> None:
    result = failure(status, {"error": {"code": status, "message": "x"}})
    assert (result.error_type, result.disposition) == (error_type, disposition)


def test_provider_error_message_includes_raw_uncut() -> None:
    # Not cut here: the client removes the API key first, then shortens (a cut could split a key).
    raw = "m is temporarily rate-limited upstream. " + "x" * 1000
    result = failure(429, {"error": {"code": 429, "message": "Provider returned error",
                                      "metadata": {"raw": raw, "provider_name": "Foo"}}})
    assert result.message.startswith("Provider returned error (m is temporarily rate-limited")
    assert result.message.endswith("x" * 1000 + ")")


def test_retry_after_sources_in_order_of_preference() -> None:
    body = {"error": {"code": 429, "message": "busy", "availability": {"retry_after": 40}}}
    assert failure(429, body, {"Retry-After": "7"}).retry_after_s == 7.0
    assert failure(429, body).retry_after_s == 40.0
    reset_ms = str(int((NOW_EPOCH + 25) * 1000))
    plain = {"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-day"}}
    assert failure(429, plain, {"X-RateLimit-Reset": reset_ms}).retry_after_s == 25.0
    copied = {"error": {**plain["error"], "metadata": {"headers": {"X-RateLimit-Reset": reset_ms}}}}
    assert failure(429, copied).retry_after_s == 25.0
    assert failure(503, plain).retry_after_s is None


def test_failed_models_come_from_previous_errors_when_named() -> None:
    body = {"error": {"code": 502, "message": "all failed", "metadata": {"previous_errors": [
        {"provider": "a", "model": WINDOW[0], "status": 429},
        {"provider": "b", "model": WINDOW[0], "status": 503},
        {"provider": "c", "model": WINDOW[2], "status": 502},
        {"provider": "d", "status": 500},
    ]}}}
    assert failure(502, body).failed_models == (WINDOW[0], WINDOW[2])


@pytest.mark.parametrize(
    ("message", "named"),
    [("openai/gpt-4o-mini is not a valid model ID", ("openai/gpt-4o-mini",)),
     ("Model anthropic/claude-haiku-4.5. is not a valid model ID", ("anthropic/claude-haiku-4.5",)),
     ("openai/gpt-4o-mini-2 is not a valid model ID", WINDOW),  # no whole id named: all
     ("unknown model", WINDOW)],
)
def test_invalid_model_names_only_the_unknown_id(message: str, named: tuple[str, ...]) -> None:
    availability = {"code": "model_not_found"}
    result = failure(400, {"error": {"code": 400, "message": message, "availability": availability}})
    assert result.error_type == "invalid_model"
    assert result.failed_models == named
