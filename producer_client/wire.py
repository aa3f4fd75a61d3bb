"""How a job sits in Redis: arq's job envelope, JSON-encoded (never pickle).

A non-Python producer enqueues by writing the same bytes (see README, "Enqueueing from another
language"): ``SET {prefix}job:{id} <envelope> PX <ttl>`` and ``ZADD {prefix}queue:{name} <epoch ms> {id}``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from producer_client.contract import Job
from producer_client.errors import InvalidJob
from producer_client.keys import JOB_FUNCTION


def envelope(job: Job, *, enqueue_ms: int | None = None, batch_id: str | None = None) -> bytes:
    """arq's ``{t, f, a, k, et}`` envelope around the job's JSON."""
    kwargs: dict[str, Any] = {"batch_id": batch_id} if batch_id else {}
    try:
        return _dump(job, kwargs, enqueue_ms)
    except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate ("\ud800") is not UTF-8
        raise InvalidJob(f"job is not encodable as JSON: {exc}") from None


def _dump(job: Job, kwargs: dict[str, Any], enqueue_ms: int | None) -> bytes:
    return orjson.dumps(
        {
            "t": None,
            "f": JOB_FUNCTION,
            "a": [job.model_dump(mode="json", exclude_defaults=False)],
            "k": kwargs,
            "et": enqueue_ms if enqueue_ms is not None else int(time.time() * 1000),
        }
    )
