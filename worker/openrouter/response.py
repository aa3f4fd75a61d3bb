"""Turn one HTTP response into a Completion or a classified Failure.

OpenRouter reports errors three ways (reference §4): a real HTTP status with an ``error`` body,
an HTTP 200 whose body has a top-level ``error`` and no ``choices``, and an HTTP 200 whose first
choice ends with ``finish_reason: "error"``. All three are failures here; only a 2xx with a usable
first choice is a success. Unknown fields are ignored (the API adds fields without notice).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from producer_client.money import MoneyError, usd_to_nano

from .backoff import parse_rate_limit_reset, parse_retry_after
from .errors import Disposition, Failure, classify_status
from .models import Completion

_FALLBACK_200_STATUS = 502  # a 200-with-error body whose code is missing or not a number
# Error text stays long here: the client removes the API key first and only then shortens it, so a
# key can never be cut in two and survive in part. 64 KiB bounds a huge HTML error page.
_RAW_CHARS = 65_536


def parse_response(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    window: tuple[str, ...],
    *,
    now_epoch_s: float | None = None,
) -> Completion | Failure:
    """Classify a complete response to a request for ``window`` (model + native fallbacks)."""
    body = _load(content)
    if body is None:
        return _not_json(status, content, window)
    if not 200 <= status < 300:
        return _error_body(status, headers, body, window, now_epoch_s, in_band=False)
    if body.get("error") is not None:
        code = _numeric(_as_dict(body["error"]).get("code"))
        code = code if code is not None else _FALLBACK_200_STATUS
        return _error_body(code, headers, body, window, now_epoch_s, in_band=True)
    return _success(status, headers, body, window)


def models_before(window: tuple[str, ...], served: str | None) -> tuple[str, ...]:
    """Window models OpenRouter tried and abandoned before ``served`` answered."""
    if served is None or served not in window:
        return ()
    return window[: window.index(served)]


def _load(content: bytes) -> dict[str, Any] | None:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _not_json(status: int, content: bytes, window: tuple[str, ...]) -> Failure:
    snippet = content[:_RAW_CHARS].decode("utf-8", "replace").strip()
    message = f"non-JSON body (HTTP {status}): {snippet}" if snippet else f"empty body (HTTP {status})"
    if 200 <= status < 300:
        # A 2xx we cannot read is a broken hop (proxy, truncated body): worth another try.
        return Failure("invalid_response", status, message, Disposition.RETRY, failed_models=window)
    error_type, disposition = classify_status(status, message)
    return Failure(error_type, status, message, disposition, failed_models=window)


def _error_body(
    code: int,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    window: tuple[str, ...],
    now_epoch_s: float | None,
    *,
    in_band: bool,
) -> Failure:
    error = _as_dict(body.get("error"))
    metadata = _as_dict(error.get("metadata"))
    availability = _as_dict(error.get("availability"))
    message = _error_message(error, body)
    hints = [
        v
        for v in (metadata.get("error_type"), error.get("error_type"), availability.get("code"))
        if isinstance(v, str)
    ]
    error_type, disposition = classify_status(code, message, hints)
    if in_band:
        error_type = "upstream_error_200"
    retry_after = _retry_after(code, headers, availability, metadata, now_epoch_s)
    failed = _previous_error_models(metadata) or window
    if error_type == "invalid_model":
        # One unknown id fails the whole request; name it so the others can be asked again.
        failed = _named_models(window, message) or failed
    return Failure(error_type, code, message, disposition, retry_after, failed)


def _success(
    status: int, headers: Mapping[str, str], body: Mapping[str, Any], window: tuple[str, ...]
) -> Completion | Failure:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return Failure(
            "invalid_response", status, "response has no choices", Disposition.RETRY,
            failed_models=window,
        )
    choice: dict[str, Any] = choices[0]
    served = body.get("model") if isinstance(body.get("model"), str) else None
    finish_reason = choice.get("finish_reason")
    if finish_reason == "error":
        error = _as_dict(choice.get("error"))
        code = _numeric(error.get("code"))
        message = _error_message(error, body) if error else "finish_reason is error"
        # The served model broke mid-generation; those before it had already been abandoned.
        failed = window
        if served is not None and served in window:
            failed = window[: window.index(served) + 1]
        return Failure(
            "finish_error", code if code is not None else status, message, Disposition.RETRY,
            failed_models=failed,
        )
    message_obj = choice.get("message")
    message_map: Mapping[str, Any] = message_obj if isinstance(message_obj, dict) else {}
    content = message_map.get("content")
    usage = _as_dict(body.get("usage"))
    generation_id = body.get("id") if isinstance(body.get("id"), str) else None
    provider = body.get("provider")
    return Completion(
        message=message_map,
        content=content if isinstance(content, str) else None,
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        model_served=served if served is not None else window[0],
        provider=provider if isinstance(provider, str) else None,
        generation_id=generation_id or headers.get("x-generation-id"),
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        cost_nano=_cost_nano(usage.get("cost")),
    )


def _error_message(error: Mapping[str, Any], body: Mapping[str, Any]) -> str:
    message = error.get("message")
    text = message if isinstance(message, str) and message else ""
    raw = _as_dict(error.get("metadata")).get("raw")
    if isinstance(raw, str) and raw and raw not in text:
        text = f"{text} ({raw})" if text else raw
    if not text:
        text = orjson.dumps(body)[:_RAW_CHARS].decode("utf-8", "replace")
    return " ".join(text.split())


def _retry_after(
    code: int,
    headers: Mapping[str, str],
    availability: Mapping[str, Any],
    metadata: Mapping[str, Any],
    now_epoch_s: float | None,
) -> float | None:
    seconds = parse_retry_after(headers.get("retry-after"))
    if seconds is not None:
        return seconds
    hinted = availability.get("retry_after")
    if isinstance(hinted, int | float) and not isinstance(hinted, bool) and hinted >= 0:
        return float(hinted)
    if code != 429:
        return None
    # Platform limits (free-models-per-day) say when they reset instead of how long to wait.
    reset = headers.get("x-ratelimit-reset")
    if reset is None:
        copied = _as_dict(metadata.get("headers"))
        value = copied.get("X-RateLimit-Reset", copied.get("x-ratelimit-reset"))
        reset = str(value) if isinstance(value, str | int | float) else None
    now = now_epoch_s if now_epoch_s is not None else time.time()
    return parse_rate_limit_reset(reset, now)


def _previous_error_models(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    previous = metadata.get("previous_errors")
    if not isinstance(previous, list):
        return ()
    names = (_as_dict(p).get("model") for p in previous)
    return tuple(dict.fromkeys(n for n in names if isinstance(n, str) and n))


def _named_models(window: tuple[str, ...], message: str) -> tuple[str, ...]:
    """Window models the message names as whole ids (``openai/gpt-4o`` is not in ``…-mini``)."""
    return tuple(
        m for m in window if re.search(rf"(?<![\w./:~-]){re.escape(m)}(?![\w/:~-]|\.\w)", message)
    )


def _numeric(value: object) -> int | None:
    """An ``error.code`` as an int: numbers and numeric strings; never bools."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _cost_nano(value: object) -> int | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return usd_to_nano(value)
    except MoneyError:
        return None


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
