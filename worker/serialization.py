"""arq's job serializer pair, JSON only: a payload is data, never code.

The deserializer never raises. Bytes that are not a JSON job envelope (a pickle, garbage, a
wrong shape) become a job whose payload is an ``InvalidPayload`` marker, so the job function runs
and writes a ``rejected`` result instead of arq failing the job with no result at all.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from producer_client.keys import JOB_FUNCTION

INVALID_KEY = "__routeq_invalid_payload__"


def serialize(obj: Any) -> bytes:
    return orjson.dumps(obj, default=str)


def deserialize(data: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _invalid(f"job payload is not JSON ({exc.msg} at byte {exc.pos}); pickles are refused")
    problem = _envelope_problem(doc)
    if problem:
        return _invalid(problem, enqueued_ms=doc.get("et") if isinstance(doc, dict) else None)
    if doc["f"] != JOB_FUNCTION:
        return _invalid(f"job names function {doc['f']!r}; this worker only runs {JOB_FUNCTION!r}")
    return dict(doc)


def _envelope_problem(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return f"job envelope must be a JSON object, got {type(doc).__name__}"
    if not isinstance(doc.get("f"), str):
        return "job envelope: 'f' (function name) missing or not a string"
    a, k = doc.get("a"), doc.get("k", {})
    if not isinstance(a, list) or len(a) != 1:
        return "job envelope: 'a' must be a list holding exactly one job document"
    if not isinstance(k, dict):
        return "job envelope: 'k' must be an object"
    if not isinstance(doc.get("et"), int) or isinstance(doc.get("et"), bool):
        return "job envelope: 'et' (enqueue time, epoch ms) missing or not an integer"
    return None


def _invalid(reason: str, *, enqueued_ms: Any = None) -> dict[str, Any]:
    et = enqueued_ms if isinstance(enqueued_ms, int) and not isinstance(enqueued_ms, bool) else None
    return {
        "t": None,
        "f": JOB_FUNCTION,
        "a": [{INVALID_KEY: reason}],
        "k": {},
        "et": et if et is not None else int(time.time() * 1000),
    }
