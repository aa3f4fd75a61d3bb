"""The async producer client: submit jobs, wait for results without polling, read them.

Waiting uses the job's done list: the worker pushes a token there in the same atomic step that
writes the result, and the waiter BLPOPs it. A waiter that pops the token pushes it back, so any
number of waiters on one job all wake.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from producer_client import scripts
from producer_client.connection import connect, redact, redis_url
from producer_client.contract import Job, Result
from producer_client.errors import QueueFull, RedisUnavailable, ResultTimeout
from producer_client.jobs import build_job, new_job_id
from producer_client.keys import Keys
from producer_client.wire import envelope

OnFull = Literal["raise", "wait"]
_BLOCK_SLICE_S = 5.0  # each BLPOP blocks at most this long, well under the socket timeout
_JOB_TTL_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Submitted:
    """One job's fate at enqueue time: ``added`` False means the id was already known."""

    job_id: str
    added: bool
    batch_id: str | None = None


class Client:
    """Producer side of routeq. Cheap to create; share one per process."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "routeq:",
        queue: str = "interactive",
        max_queue_depth: int = 0,
        on_full: OnFull = "raise",
        full_wait_s: float = 60.0,
        url_for_errors: str = "redis",
    ) -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self.queue = queue
        self.max_queue_depth = max_queue_depth
        self.on_full = on_full
        self.full_wait_s = full_wait_s
        self._where = url_for_errors
        self._enqueue = redis.register_script(scripts.load("enqueue.lua"))

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> Client:
        url = url or redis_url()
        timeout = kwargs.pop("connect_timeout_s", 2.0)
        return cls(connect(url, connect_timeout_s=timeout), url_for_errors=redact(url), **kwargs)

    async def close(self) -> None:
        await self.redis.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- submitting -------------------------------------------------------------------------

    async def submit(
        self,
        messages: Sequence[Mapping[str, Any]] | None = None,
        *,
        prompt: str | None = None,
        context: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        job_id: str | None = None,
        queue: str | None = None,
        on_full: OnFull | None = None,
    ) -> str:
        """Enqueue one job and return its id. The same id twice runs the job once."""
        job = build_job(messages, prompt=prompt, context=context, params=params, metadata=metadata)
        (sub,) = await self.submit_jobs([(job_id or new_job_id(), job)], queue=queue, on_full=on_full)
        return sub.job_id

    async def submit_jobs(
        self,
        jobs: Sequence[tuple[str, Job]],
        *,
        queue: str | None = None,
        batch_id: str | None = None,
        on_full: OnFull | None = None,
    ) -> list[Submitted]:
        """Enqueue validated jobs in one atomic script call (callers chunk large lists)."""
        queue_key = self.keys.queue(queue or self.queue)
        now_ms = int(time.time() * 1000)
        argv: list[Any] = [
            self.keys.result(""),
            self.max_queue_depth,
            self.keys.wake(queue_key),
            _JOB_TTL_MS,
        ]
        for job_id, job in jobs:
            argv += [job_id, now_ms, envelope(job, enqueue_ms=now_ms, batch_id=batch_id)]
        policy = on_full or self.on_full
        deadline = time.monotonic() + self.full_wait_s
        pending = list(range(len(jobs)))
        outcome: dict[int, bool] = {}
        delay = 0.05
        while True:
            added, dups, full = await self._call(self._enqueue(keys=[queue_key], args=argv))
            for pos in added:
                outcome[pending[int(pos) - 1]] = True
            for pos in dups:
                outcome[pending[int(pos) - 1]] = False
            if not full:
                break
            if policy == "raise" or time.monotonic() >= deadline:
                refused = [jobs[pending[int(p) - 1]][0] for p in full]
                raise QueueFull(
                    f"queue {queue_key} is at its maximum depth {self.max_queue_depth}: "
                    f"{len(refused)} job(s) not enqueued (first: {refused[0]}); "
                    f"{len(outcome)} enqueued or already known"
                )
            pending = [pending[int(p) - 1] for p in full]
            argv = argv[:4]
            for idx in pending:
                job_id, job = jobs[idx]
                argv += [job_id, now_ms, envelope(job, enqueue_ms=now_ms, batch_id=batch_id)]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        return [Submitted(jobs[i][0], outcome[i], batch_id) for i in range(len(jobs))]

    # -- reading results ----------------------------------------------------------------------

    async def get(self, job_id: str) -> Result | None:
        """The result if the job has finished, else None. Never waits."""
        raw = await self._call(self.redis.get(self.keys.result(job_id)))
        return None if raw is None else Result.model_validate_json(raw)

    async def result(self, job_id: str, timeout: float = 60.0) -> Result:
        """Wait (without polling) until the job's result exists; ``ResultTimeout`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        done_key = self.keys.done(job_id)
        while True:
            res = await self.get(job_id)
            if res is not None:
                return res
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResultTimeout(f"no result for job {job_id} after {timeout:g}s")
            popped = await self._blpop([done_key], max(0.01, min(left, _BLOCK_SLICE_S)))
            if popped is not None:
                # Hand the token on so other waiters on the same job wake too.
                await self._call(self.redis.lpush(done_key, popped[1]))

    async def as_completed(
        self, job_ids: Iterable[str], *, batch_id: str | None = None, timeout: float = 3600.0
    ) -> AsyncIterator[Result]:
        """Yield results as jobs finish, without polling each job.

        With ``batch_id`` (jobs sent by ``submit_many``), one BLPOP on the batch's done list wakes
        for any of its jobs; that list is consumed, so read a batch with one consumer at a time.
        Without it, BLPOP watches the done lists of up to 256 waiting jobs at once.
        """
        waiting = set(job_ids)
        deadline = time.monotonic() + timeout
        for res in await self.get_many(list(waiting)):
            if res is not None:
                waiting.discard(res.job_id)
                yield res
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResultTimeout(f"{len(waiting)} job(s) still unfinished after {timeout:g}s")
            block = max(0.01, min(left, _BLOCK_SLICE_S))
            if batch_id is not None:
                ready = await self._pop_batch(self.keys.batch_done(batch_id), block)
            else:
                ready = await self._pop_done(list(waiting)[:256], block)
            if not ready:
                # A quiet slice: sweep once, in case a wake-up went to someone else.
                ready = list(waiting)
            candidates = [j for j in dict.fromkeys(ready) if j in waiting]
            for res in await self.get_many(candidates):
                if res is not None and res.job_id in waiting:
                    waiting.discard(res.job_id)
                    yield res

    async def _pop_batch(self, key: str, block: float) -> list[str]:
        popped = await self._blpop([key], block)
        if popped is None:
            return []
        more = await self._call(self.redis.lpop(key, 1000)) or []
        return [_text(popped[1]), *(_text(m) for m in more)]

    async def _pop_done(self, job_ids: list[str], block: float) -> list[str]:
        keys = [self.keys.done(j) for j in job_ids]
        popped = await self._blpop(keys, block)
        if popped is None:
            return []
        key = _text(popped[0])
        await self._call(self.redis.lpush(key, popped[1]))  # hand the token on
        return [key.removeprefix(self.keys.done(""))]

    async def wait_all(
        self, job_ids: Iterable[str], *, batch_id: str | None = None, timeout: float = 3600.0
    ) -> list[Result]:
        """Every result, in the order of ``job_ids``."""
        ids = list(job_ids)
        got = {r.job_id: r async for r in self.as_completed(ids, batch_id=batch_id, timeout=timeout)}
        return [got[j] for j in ids]

    async def get_many(self, job_ids: Sequence[str], *, chunk: int = 1000) -> list[Result | None]:
        out: list[Result | None] = []
        for i in range(0, len(job_ids), chunk):
            part = job_ids[i : i + chunk]
            raws = await self._call(self.redis.mget([self.keys.result(j) for j in part]))
            out += [None if r is None else Result.model_validate_json(r) for r in raws]
        return out

    async def queue_depth(self, queue: str | None = None) -> int:
        depth: int = await self._call(self.redis.zcard(self.keys.queue(queue or self.queue)))
        return depth

    async def _blpop(self, keys: list[str], seconds: float) -> Any:
        # Redis >= 6 takes fractional BLPOP timeouts; redis-py's annotation says int.
        return await self._call(self.redis.blpop(keys, timeout=seconds))  # type: ignore[arg-type]

    async def _call(self, aw: Any) -> Any:
        try:
            return await aw
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RedisUnavailable(f"Redis at {self._where} is unreachable: {exc}") from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
