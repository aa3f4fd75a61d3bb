"""Building and checking jobs on the producer side, before anything reaches Redis."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from producer_client.contract import Job
from producer_client.errors import InvalidJob, describe_validation_error


def new_job_id() -> str:
    """128 random bits in hex (uuid4's randomness without building a UUID object: a batch of
    thousands of jobs makes one each)."""
    return os.urandom(16).hex()


def build_job(
    messages: Sequence[Mapping[str, Any]] | None = None,
    *,
    prompt: str | None = None,
    context: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Job:
    """A validated Job from plain data; ``prompt`` is shorthand for one user message."""
    if messages is None and prompt is None:
        raise InvalidJob("messages: give messages or a prompt")
    if messages is not None and prompt is not None:
        raise InvalidJob("messages: give messages or a prompt, not both")
    if prompt is not None and isinstance(prompt, str) and not prompt.strip():
        raise InvalidJob("prompt: empty (nothing to complete)")
    msgs = list(messages) if messages is not None else [{"role": "user", "content": prompt}]
    doc: dict[str, Any] = {"messages": msgs}
    if context is not None:
        doc["context"] = context
    if params is not None:
        doc["params"] = params
    if metadata is not None:
        doc["metadata"] = metadata
    return parse_job(doc)


def parse_job(doc: Mapping[str, Any] | bytes | str) -> Job:
    """Validate a job document (dict or JSON) against the contract, or raise ``InvalidJob``."""
    try:
        if isinstance(doc, bytes | str):
            return Job.model_validate_json(doc)
        return Job.model_validate(dict(doc))
    except ValidationError as exc:
        raise InvalidJob(describe_validation_error(exc)) from None
