"""Writing a job's outcome: result key, waiter wake-up, batch list, dead-letter index, decision stream.

One Lua call does all of it, so a waiter never wakes to a missing result and a job that runs twice
keeps the first result. Redis outages are ridden out with bounded retries: a finished job must not
lose its result because Redis restarted under it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from producer_client.contract import Result
from producer_client.keys import Keys
from worker import scripts

log = logging.getLogger("routeq.results")


@dataclass(frozen=True)
class ResultStore:
    redis: Redis
    keys: Keys
    ttl_s: int = 86_400
    decisions_maxlen: int = 100_000
    store_prompts: bool = False
    retry_for_s: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "_finish", self.redis.register_script(scripts.load("finish.lua")))

    async def existing(self, job_id: str) -> Result | None:
        raw = await self.redis.get(self.keys.result(job_id))
        return None if raw is None else Result.model_validate_json(raw)

    async def write(
        self, result: Result, *, batch_id: str | None = None, messages: Any = None
    ) -> bool:
        """Store the result once; True if this call wrote it, False if a result already existed."""
        keys = [
            self.keys.result(result.job_id),
            self.keys.done(result.job_id),
            self.keys.decisions,
            self.keys.failed,
        ]
        if batch_id:
            keys.append(self.keys.batch_done(batch_id))
        args: list[Any] = [
            result.model_dump_json(),
            self.ttl_s,
            result.job_id,
            self.decisions_maxlen,
            result.status,
            int(time.time() * 1000),
            *self._decision_fields(result, messages),
        ]
        delay = 0.1
        deadline = time.monotonic() + self.retry_for_s
        while True:
            try:
                written = await self._finish(keys=keys, args=args)  # type: ignore[attr-defined]
                return bool(written)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("result write for %s failed (%s); retrying in %.1fs", result.job_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _decision_fields(self, result: Result, messages: Any) -> list[str]:
        r = result.routing
        fields = {
            "job_id": result.job_id,
            "status": result.status,
            "error": result.error.type if result.error else "",
            "rule": r.rule if r else "",
            "model": r.model if r else "",
            "model_served": (r.model_served or "") if r else "",
            "provider": (r.provider or "") if r else "",
            "task_type": (r.task_type or "") if r else "",
            "rules_version": r.rules_version if r else "",
            "cost_usd": result.usage.cost_usd if result.usage else "0",
            "total_ms": str(result.timing.total_ms),
            "attempts": str(len(r.attempts)) if r else "0",
        }
        if messages is not None:
            blob = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS, default=str)
            if self.store_prompts:
                fields["messages"] = blob.decode()
            else:
                fields["prompt_sha256"] = hashlib.sha256(blob).hexdigest()
        return [x for kv in fields.items() for x in kv]
