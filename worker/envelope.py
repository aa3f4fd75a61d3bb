"""The job envelope, checked whole before anything acts on it: a payload is data, never code.

Jobs sit in Redis as arq's JSON envelope ``{"t", "f", "a", "k", "et"}`` (see ``producer_client/
wire.py``). Anyone who can write to Redis can write one, so every field is checked here, and a
bad envelope becomes a :class:`BadEnvelope`, which the worker turns into a ``rejected`` result
without calling upstream: never an exception, a retry loop or a job without a result.

- ``f`` must name routeq's job function; ``a`` holds exactly one job document (an object);
- ``k`` may only carry ``batch_id`` (a valid id);
- ``et``, the enqueue time, must be whole epoch milliseconds between 1970 and 9999;
- ``t`` (arq's try count) may be null or a non-negative integer and is ignored: the worker
  counts tries itself, in Redis, when it claims a job;
- any other key is refused, so a misspelt field is not silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from producer_client.keys import JOB_FUNCTION
from producer_client.specs import is_valid_id

KEYS: Final = ("t", "f", "a", "k", "et")
MAX_EPOCH_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@dataclass(frozen=True)
class Envelope:
    job: dict[str, Any]
    batch_id: str | None
    enqueued_ms: int


@dataclass(frozen=True)
class BadEnvelope:
    reason: str
    batch_id: str | None = None
    enqueued_ms: int | None = None


def open_envelope(raw: bytes | None, *, where: str = "the job key") -> Envelope | BadEnvelope:
    if raw is None:
        return BadEnvelope(f"no job payload at {where} (expired, or the id was queued without one)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return BadEnvelope(f"job payload is not JSON ({exc.msg} at byte {exc.pos}); pickles are refused")
    if not isinstance(doc, dict):
        return BadEnvelope(f"job envelope must be a JSON object, got {_kind(doc)}")
    et = doc.get("et")
    enqueued = et if isinstance(et, int) and _is_int(et) and 0 <= et <= MAX_EPOCH_MS else None
    k = doc.get("k", {})
    batch = k.get("batch_id") if isinstance(k, dict) and is_valid_id(k.get("batch_id")) else None
    problem = _problem(doc, enqueued)
    if problem is not None:
        return BadEnvelope(f"job envelope: {problem}", batch, enqueued)
    assert enqueued is not None
    return Envelope(doc["a"][0], batch, enqueued)


def _problem(doc: dict[str, Any], enqueued: int | None) -> str | None:
    unknown = sorted(set(doc) - set(KEYS))
    if unknown:
        return f"unknown key {unknown[0]!r} (an envelope has {', '.join(KEYS)})"
    if doc.get("f") != JOB_FUNCTION:
        return f"'f' must be {JOB_FUNCTION!r} (the job function), got {_show(doc.get('f'))}"
    a = doc.get("a")
    if not isinstance(a, list) or len(a) != 1 or not isinstance(a[0], dict):
        return "'a' must be a list holding exactly one job document (an object)"
    k = doc.get("k", {})
    if not isinstance(k, dict):
        return f"'k' must be an object, got {_kind(k)}"
    if set(k) - {"batch_id"}:
        return f"'k' may only hold batch_id, got {', '.join(sorted(map(str, k)))}"
    if "batch_id" in k and not is_valid_id(k["batch_id"]):
        return f"'k.batch_id' is not a valid id: {_show(k['batch_id'])}"
    t = doc.get("t")
    if t is not None and not (_is_int(t) and t >= 0):
        return f"'t' must be null or a try count, got {_show(t)}"
    if enqueued is None:
        return f"'et' must be the enqueue time in whole epoch ms (1970-9999), got {_show(doc.get('et'))}"
    return None


def _is_int(value: Any) -> bool:
    return type(value) is int


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
