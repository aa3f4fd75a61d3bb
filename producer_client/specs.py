"""Job specs: the plain shape producers hand to ``submit_many`` and write in batch files.

A spec is ``{id?, messages | prompt, context?, params?, metadata?}`` or an ``(id, Job)`` pair;
ids are checked here so every key they end up in is safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from producer_client.contract import Job
from producer_client.errors import InvalidJob
from producer_client.jobs import build_job, new_job_id

JobSpec = Mapping[str, Any] | tuple[str, Job]
SPEC_FIELDS = ("id", "messages", "prompt", "context", "params", "metadata")
_SPEC_SET = frozenset(SPEC_FIELDS)
_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def is_valid_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _ID.match(value) is not None


def check_id(value: object, what: str = "id") -> str:
    """A job or batch id that is safe in a Redis key and matches the contract's JobId."""
    if not is_valid_id(value):
        raise InvalidJob(f"{what}: {value!r} is not a valid id (1-128 of A-Z a-z 0-9 . _ : @ -)")
    return value


def parse_spec(doc: Mapping[str, Any]) -> tuple[str | None, Job]:
    """(explicit id or None, Job) from ``{id?, messages | prompt, context?, params?, metadata?}``."""
    if not doc.keys() <= _SPEC_SET:
        unknown = sorted(set(doc) - _SPEC_SET)
        raise InvalidJob(f"{unknown[0]}: unknown field (a job has {', '.join(SPEC_FIELDS)})")
    job_id = None if doc.get("id") is None else check_id(doc["id"])
    messages, prompt = doc.get("messages"), doc.get("prompt")
    if messages is not None and not isinstance(messages, list):
        raise InvalidJob(f"messages: expected a list of messages, got {type(messages).__name__}")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidJob(f"prompt: expected a string, got {type(prompt).__name__}")
    job = build_job(
        messages,
        prompt=prompt,
        context=doc.get("context"),
        params=doc.get("params"),
        metadata=doc.get("metadata"),
    )
    return job_id, job


def job_pair(spec: JobSpec, index: int) -> tuple[str, Job]:
    """One ``submit_many`` item as (id, Job); InvalidJob names the item by index (and id)."""
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[1], Job):
            raise InvalidJob(f"job {index}: expected a dict or an (id, Job) pair")
        try:
            return check_id(spec[0]), spec[1]
        except InvalidJob as exc:
            raise InvalidJob(f"job {index}: {exc}") from None
    if not isinstance(spec, Mapping):
        raise InvalidJob(f"job {index}: expected a dict or an (id, Job) pair, got {type(spec).__name__}")
    try:
        job_id, job = parse_spec(spec)
    except InvalidJob as exc:
        own = spec.get("id")
        named = f" (id {own!r})" if is_valid_id(own) else ""
        raise InvalidJob(f"job {index}{named}: {exc}") from None
    return job_id or new_job_id(), job
