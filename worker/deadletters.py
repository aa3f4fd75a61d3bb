"""Dead letters: the failed jobs an operator can list and send round again.

The worker indexes each failed job in the sorted set ``{prefix}failed`` (score = finish time in
epoch ms) in the same Lua call that writes its result. A result alone cannot be re-run, so the
same call also keeps the job document beside it under ``{prefix}failedjob:{id}``, with the
result's TTL: both vanish together.

A retry re-enqueues the job under the SAME id through the producer's own enqueue path, so every
waiter on that id (``Client.result``) sees the new result. The enqueue script treats an id that
still has a result as a duplicate, hence the old result, done list and index entry are removed
first, in one atomic claim that also makes two concurrent retries of one job run it once. If the
enqueue is refused (queue full), the claim is undone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from producer_client.client import Client
from producer_client.errors import InvalidJob, RouteqError
from producer_client.jobs import parse_job
from producer_client.keys import Keys
from producer_client.lua import lua_script


class RetryRefused(RouteqError):
    """The job cannot be re-queued; the message says why and nothing was changed."""


@dataclass(frozen=True)
class DeadLetter:
    """One failed job as the listing shows it."""

    job_id: str
    failed_at_ms: int
    error_type: str | None
    message: str | None
    retryable: bool | None
    rule: str | None
    model: str | None
    attempts: int

    @property
    def failed_at(self) -> str:
        return datetime.fromtimestamp(self.failed_at_ms / 1000, UTC).isoformat(timespec="milliseconds")

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "failed_at": self.failed_at,
            "error_type": self.error_type,
            "message": self.message,
            "retryable": self.retryable,
            "rule": self.rule,
            "model": self.model,
            "attempts": self.attempts,
        }


async def list_failed(
    redis: Redis, keys: Keys, *, limit: int | None = 50, since_ms: int | None = None, chunk: int = 500
) -> list[DeadLetter]:
    """Failed jobs, newest first; index entries whose result has expired are pruned on the way."""
    out: list[DeadLetter] = []
    expired: list[str] = []
    offset = 0
    low: float | str = since_ms if since_ms is not None else "-inf"
    while limit is None or len(out) < limit:
        size = chunk if limit is None else min(chunk, limit - len(out))
        rows: list[tuple[bytes, float]] = await redis.zrevrangebyscore(
            keys.failed, "+inf", low, start=offset, num=size, withscores=True
        )
        if not rows:
            break
        offset += len(rows)
        ids = [_text(member) for member, _ in rows]
        raws = await redis.mget([keys.result(i) for i in ids])
        for job_id, (_, score), raw in zip(ids, rows, raws, strict=True):
            if raw is None:
                expired.append(job_id)
            else:
                out.append(_dead_letter(job_id, int(score), raw))
        if len(rows) < size:
            break
    if expired:
        prune = redis.register_script(lua_script("worker", "deadletter_prune.lua"))
        await prune(keys=[keys.failed, *(keys.result(i) for i in expired)], args=expired)
    return out if limit is None else out[:limit]


async def requeue(client: Client, job_id: str, *, queue: str | None = None) -> None:
    """Re-run one failed job under its own id; RetryRefused (and no change) if that is impossible."""
    redis, keys = client.redis, client.keys
    doc_key = keys.failed_job(job_id)
    claimed: Sequence[Any] = await redis.register_script(lua_script("worker", "deadletter_claim.lua"))(
        keys=[keys.failed, doc_key, keys.result(job_id), keys.done(job_id), keys.job(job_id)],
        args=[job_id],
    )
    verdict = _text(claimed[0])
    if verdict == "not_failed":
        raise RetryRefused(f"job {job_id} is not in the failed-job index (unknown, succeeded, or expired)")
    if verdict == "no_job":
        raise RetryRefused(
            f"job {job_id} failed but its job document is gone (expired, or failed before "
            "routeq kept failed jobs); submit it again yourself"
        )
    if verdict == "busy":
        raise RetryRefused(f"job {job_id} is already queued or running")
    doc, score, result, result_ttl, doc_ttl = claimed[1:]

    async def undo(why: str) -> RetryRefused:
        await redis.register_script(lua_script("worker", "deadletter_restore.lua"))(
            keys=[keys.failed, doc_key, keys.result(job_id), keys.done(job_id)],
            args=[job_id, score, doc, doc_ttl, result, result_ttl],
        )
        return RetryRefused(f"job {job_id} was not re-queued: {why}")

    try:
        job = parse_job(bytes(doc))
    except InvalidJob as exc:
        raise await undo(f"its stored document is not a valid job ({exc})") from None
    try:
        (submitted,) = await client.submit_jobs([(job_id, job)], queue=queue, on_full="raise")
    except RouteqError as exc:
        if await redis.exists(keys.job(job_id)):
            return  # the error came after the job reached the queue: the retry happened
        raise await undo(str(exc)) from None
    if not submitted.added:
        # Someone enqueued this id between the claim and now: that run will write the result.
        raise RetryRefused(f"job {job_id} was enqueued by someone else meanwhile; not queued twice")


def _dead_letter(job_id: str, score_ms: int, raw: bytes) -> DeadLetter:
    """Tolerant of result documents from other versions: missing fields show as None."""
    try:
        doc = _as_dict(orjson.loads(raw))
    except orjson.JSONDecodeError:
        doc = {}
    error, routing = _as_dict(doc.get("error")), _as_dict(doc.get("routing"))
    attempts = routing.get("attempts")
    retryable = error.get("retryable")
    return DeadLetter(
        job_id=job_id,
        failed_at_ms=score_ms,
        error_type=_str_or_none(error.get("type")),
        message=_str_or_none(error.get("message")),
        retryable=retryable if isinstance(retryable, bool) else None,
        rule=_str_or_none(routing.get("rule")),
        model=_str_or_none(routing.get("model_served")) or _str_or_none(routing.get("model")),
        attempts=len(attempts) if isinstance(attempts, list) else 0,
    )


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
