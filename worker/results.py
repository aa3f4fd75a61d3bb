"""Finishing a job: settle, result, waiter wake-up, batch list, dead letter, decision stream.

One Lua call (``scripts/finish.lua``) does all of it, together with dropping the job's own keys,
so a waiter never wakes to a missing result, a job that runs twice keeps its first result, and
a finished job costs one round trip. Redis outages are ridden out with bounded retries: a
finished job must not lose its result because Redis restarted under it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from producer_client.contract import Job, Result
from producer_client.keys import Keys
from producer_client.lua import lua_script
from producer_client.money import usd_to_nano
from worker.batched_script import BatchedScript
from worker.budget import Settlement, replies
from worker.rollup_format import CAPS, DIMENSIONS, dims_of, hour_of, metrics_of
from worker.spend import Hold

log = logging.getLogger("routeq.results")

_PLACEHOLDER = "@budget"
_PLACEHOLDER_MEMBER = b',"budget":"' + _PLACEHOLDER.encode() + b'"}'
_US, _RS = "\x1f", "\x1e"  # unit and record separators of the packed script arguments
_CAPS = tuple(CAPS[d] for d in DIMENSIONS)


@dataclass(frozen=True)
class Finish:
    """Everything the finish script needs for one job."""

    result: Result
    queue_key: str
    batch_id: str | None = None
    hold: Hold | None = None
    charge_nano: int = 0
    job: Job | None = None  # a failed job's document is kept with its result, for ``routeq retry``
    messages: Sequence[Any] | None = None  # for the decision stream (hashed unless stored)

    @property
    def tenant(self) -> str | None:
        return self.job.context.tenant if self.job is not None else None


@dataclass(frozen=True)
class Finished:
    written: bool  # False: a result already existed (the job ran twice)
    settlement: Settlement | None


@dataclass(frozen=True)
class ResultStore:
    redis: Redis
    keys: Keys
    ttl_s: int = 86_400
    decisions_maxlen: int = 100_000
    store_prompts: bool = False
    retry_for_s: float = 60.0
    reservation_keep_s: int = 7 * 86_400
    rollup_ttl_s: int = 90 * 86_400  # 0: no rollups
    feedback_ttl_s: int = 30 * 86_400

    def __post_init__(self) -> None:
        # The script writes the result after it settled and dropped the job: a TTL Redis refuses
        # there would lose the job. Refuse it here, before any job runs.
        if self.ttl_s < 1 or self.feedback_ttl_s < 1 or self.rollup_ttl_s < 0 or self.reservation_keep_s < 1:
            raise ValueError("result, feedback and reservation TTLs must be >= 1 s; rollup TTL >= 0 (0: off)")
        object.__setattr__(self, "_script", BatchedScript(self.redis, lua_script("worker", "finish.lua")))

    async def finish(self, f: Finish) -> Finished:
        """Run the finish script, retrying through Redis outages for up to ``retry_for_s``."""
        result = f.result
        job_id = result.job_id
        hold = f.hold if f.hold is not None and f.hold.active else None
        exp = result.routing.experiment if result.routing else None
        now = time.time()
        args: list[Any] = [
            self.keys.prefix,
            job_id,
            f.queue_key,
            self._document(result, placeholder=hold is not None),
            self.ttl_s,
            result.status,
            int(now * 1000),
            self.decisions_maxlen,
            f.job.model_dump_json() if f.job is not None and result.status == "failed" else "",
            f.batch_id or "",
            hold.rid if hold else "",
            f.charge_nano if hold else 0,
            self.reservation_keep_s,
            _packed(self._decision_fields(f)),
            _RS.join(hold.fragments()) if hold else "",
            _packed(self._rollup(result, f.tenant, now)),
            self.keys.experiment_units(exp.name, exp.variant) if exp else "",
        ]
        reply = await self._call(job_id, [], args)
        written, settled = int(reply[0]), reply[1]
        return Finished(bool(written), replies.settlement(job_id, settled) if settled else None)

    async def _call(self, job_id: str, keys: list[str], args: list[Any]) -> Any:
        delay = 0.1
        deadline = time.monotonic() + self.retry_for_s
        while True:
            try:
                return await self._script(keys, args)  # type: ignore[attr-defined]
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("finishing job %s failed (%s); retrying in %.1fs", job_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _rollup(self, result: Result, tenant: str | None, now: float) -> list[Any]:
        """The rollup argument's items; with rollups off, just what the feedback reference needs."""
        exp = result.routing.experiment if result.routing else None
        cost = usd_to_nano(result.usage.cost_usd) if result.usage else 0
        if not self.rollup_ttl_s:
            return ["", 0, self.feedback_ttl_s, "", cost, result.timing.total_ms]
        return [
            hour_of(now), self.rollup_ttl_s, self.feedback_ttl_s, exp.unit_hash if exp else "", cost,
            result.timing.total_ms, *dims_of(result, tenant).values(), *_CAPS,
            *(x for pair in metrics_of(result) for x in pair),
        ]

    @staticmethod
    def _document(result: Result, *, placeholder: bool) -> bytes:
        """The result JSON; with a reservation, its ``budget`` goes last as a placeholder that the
        script replaces by the counters as settled."""
        if not placeholder:
            return result.model_dump_json().encode()
        # pydantic's JSON without the budget, then the placeholder as the last member: the same
        # document as dumping a dict, without building one (~8 µs a job).
        return result.model_dump_json(exclude={"budget"}).encode()[:-1] + _PLACEHOLDER_MEMBER

    def _decision_fields(self, f: Finish) -> list[str]:
        result, messages, r = f.result, f.messages, f.result.routing
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
            "rules_number": str(r.rules_number) if r and r.rules_number is not None else "",
            "cost_usd": result.usage.cost_usd if result.usage else "0",
            "total_ms": str(result.timing.total_ms),
            "attempts": str(len(r.attempts)) if r else "0",
            "escalations": str(len(r.escalations)) if r else "0",
            "variant": f"{r.experiment.name}:{r.experiment.variant}" if r and r.experiment else "",
            "tenant": f.tenant or "",
            "queue": f.queue_key.rsplit(":", 1)[-1],
            "queue_ms": str(result.timing.queue_ms) if result.timing.queue_ms is not None else "",
        }
        if messages is not None:
            blob = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS, default=str)
            if self.store_prompts:
                fields["messages"] = blob.decode()
            else:
                fields["prompt_sha256"] = hashlib.sha256(blob).hexdigest()
        return [x for kv in fields.items() for x in kv]


def _packed(items: list[Any]) -> str:
    """One script argument from many: unit-separated, with the separators a value might hold
    (a free-text rule name, say) replaced, so a value can never shift the ones after it."""
    return _US.join(s if _US not in (s := str(x)) else s.replace(_US, " ") for x in items)
