"""Claiming jobs: one Lua call takes every job a worker has room for, with all each one needs.

The reply carries, per job, its envelope, its try number and whether a result already exists,
so starting a job costs no further round trip; and it carries the active rules and catalog
versions, so a worker that missed an activation on pub/sub notices at its next claim.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from producer_client.keys import Keys
from producer_client.lua import lua_script

TRY_TTL_MS = 7 * 24 * 3600 * 1000  # as long as a queued job's envelope lives


@dataclass(slots=True)
class Claimed:
    """One claimed job. The job runner takes ``envelope`` out (sets it to None) once it has read
    it, so the raw bytes are not held for the whole job."""

    job_id: str
    queue_key: str
    job_try: int
    envelope: bytes | None  # None: the id was queued without one, or it expired
    has_result: bool  # a re-run whose first run already wrote the result


@dataclass(frozen=True)
class Control:
    """What the claim saw of the fleet's shared settings: the active versions (None: none)."""

    rules_version: str | None
    catalog_version: str | None


class Claimer:
    def __init__(self, redis: Redis, keys: Keys, queue_keys: Sequence[str], *, claim_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.queue_keys = tuple(queue_keys)
        self.claim_ms = int(claim_s * 1000)
        self._script = redis.register_script(lua_script("worker", "claim.lua"))

    async def claim(self, caps: Sequence[int], *, now_ms: int | None = None) -> tuple[Control, list[Claimed]]:
        """Claim up to ``caps[i]`` jobs in total from the first ``i + 1`` queues, in priority order."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        reply = await self._script(
            keys=list(self.queue_keys), args=[now, self.claim_ms, self.keys.prefix, TRY_TTL_MS, *caps]
        )
        control, flat = reply
        jobs = [
            Claimed(
                job_id=_text(flat[i]),
                queue_key=self.queue_keys[int(flat[i + 1]) - 1],
                job_try=int(flat[i + 2]),
                envelope=flat[i + 3] if isinstance(flat[i + 3], bytes) else _bytes(flat[i + 3]),
                has_result=bool(int(flat[i + 4])),
            )
            for i in range(0, len(flat), 5)
        ]
        return Control(_text_or_none(control[0]), _text_or_none(control[1])), jobs

    async def control(self) -> Control:
        """The active rules and catalog versions, read alone (at start-up, before any claim)."""
        rules, catalog = await self.redis.mget([self.keys.rules_active, self.keys.catalog_active])
        return Control(_text_or_none(rules), _text_or_none(catalog))

    async def release(self, job: Claimed) -> None:
        """Put a job whose run was cut (shutdown) back in its queue, ready at once."""
        await self.redis.zadd(job.queue_key, {job.job_id: int(time.time() * 1000)}, xx=True)

    async def drop(self, job: Claimed) -> None:
        """Remove a job that already has its result (a duplicate run) without running it."""
        async with self.redis.pipeline(transaction=True) as tx:
            tx.delete(self.keys.job(job.job_id), self.keys.tries(job.job_id))
            tx.zrem(job.queue_key, job.job_id)
            await tx.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else _text(value)


def _bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else None
