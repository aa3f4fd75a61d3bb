"""How a job sits in Redis: arq's job envelope, JSON-encoded (never pickle).

A non-Python producer enqueues by writing the same bytes (see README, "Enqueueing from another
language"): ``SET {prefix}job:{id} <envelope> PX <ttl>`` and ``ZADD {prefix}queue:{name} <epoch ms> {id}``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
from pydantic_core import PydanticSerializationError

from producer_client.contract import Job
from producer_client.errors import InvalidJob
from producer_client.keys import JOB_FUNCTION

_HEAD = b'{"t":null,"f":' + orjson.dumps(JOB_FUNCTION) + b',"a":['


def envelope(job: Job, *, enqueue_ms: int | None = None, batch_id: str | None = None) -> bytes:
    """arq's ``{t, f, a, k, et}`` envelope around the job's JSON."""
    return envelopes([job], enqueue_ms=enqueue_ms, batch_id=batch_id)[0]


def envelopes(
    jobs: Sequence[Job], *, enqueue_ms: int | None = None, batch_id: str | None = None
) -> list[bytes]:
    """The envelopes of jobs enqueued together (same time, same batch).

    Each is pydantic's own JSON of the job (serialised in Rust, no intermediate dict) between a
    head and a tail made once: a batch of thousands spends most of its time here and in
    validation. Raises InvalidJob, before returning anything, for a job JSON cannot carry."""
    kwargs = orjson.dumps({"batch_id": batch_id} if batch_id else {})
    et = enqueue_ms if enqueue_ms is not None else int(time.time() * 1000)
    tail = b'],"k":' + kwargs + b',"et":' + str(et).encode() + b"}"
    out: list[bytes] = []
    for job in jobs:
        try:
            body = job.model_dump_json()
        except PydanticSerializationError as exc:  # e.g. a lone surrogate ("\ud800") is not UTF-8
            raise InvalidJob(f"job is not encodable as JSON: {exc}") from None
        out.append(_HEAD + body.encode() + tail)
    return out
