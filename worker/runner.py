"""An arq Worker that claims in batches, wakes on push, serves priority queues and outlives Redis.

What it changes in arq, and why:
- claiming: one Lua call claims every job it has room for (arq spends 4 round trips per queue id,
  including every in-flight id at the head of the queue, which caps cluster throughput);
- waking: producers PUBLISH after enqueueing, so an idle worker starts a job within milliseconds
  instead of at its next 0.5 s poll; a freed slot also triggers a poll;
- queues: several arq queues served in priority order, the first (interactive) keeping a reserve
  of slots that later (batch) queues cannot fill;
- Redis outages: a connection error no longer ends the main loop; the worker backs off and carries
  on when Redis returns.
Running, finishing and retrying a job stay arq's own code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from arq.connections import ArqRedis
from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.utils import timestamp_ms, to_ms
from arq.worker import Worker
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from worker import scripts

log = logging.getLogger("routeq.worker")

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_MIN_POLL_GAP_S = 0.002  # coalesce bursts of wake-ups into one claim


class RouteqWorker(Worker):
    def __init__(
        self,
        *args: Any,
        queue_names: tuple[str, ...],
        interactive_reserve: int = 0,
        scan_limit: int = 5000,
        wake_channels: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, queue_name=queue_names[0], **kwargs)
        self.queue_names = queue_names
        self.interactive_reserve = interactive_reserve if len(queue_names) > 1 else 0
        self.scan_limit = scan_limit
        self.wake_channels = wake_channels
        self._wake = asyncio.Event()
        self._claim: Any = None
        self._backlog = False
        self.redis_failures = 0

    async def main(self) -> None:
        self.ctx["redis"] = self.pool
        self._claim = self.pool.register_script(scripts.load("claim.lua"))
        if self.on_startup:
            await self.on_startup(self.ctx)
        log.info("worker ready: queues=%s max_jobs=%d", ",".join(self.queue_names), self.max_jobs)
        listener = asyncio.create_task(self._listen_for_wakes()) if self.wake_channels else None
        try:
            while True:
                started = time.monotonic()
                self._wake.clear()
                try:
                    await self._poll_iteration()
                except _REDIS_DOWN as exc:
                    self.redis_failures += 1
                    if self.redis_failures == 1 or self.redis_failures % 20 == 0:
                        log.warning("Redis unreachable (%s); retrying", exc)
                    await asyncio.sleep(min(0.05 * 2 ** min(self.redis_failures, 6), 2.0))
                    continue
                except Exception:  # a bug or odd queue data must not end the worker
                    log.exception("poll failed; continuing")
                    await asyncio.sleep(1.0)
                    continue
                if self.redis_failures:
                    log.info("Redis reachable again after %d failed polls", self.redis_failures)
                    self.redis_failures = 0
                if self.burst and await self._burst_done():
                    return
                gap = max(_MIN_POLL_GAP_S, self.poll_delay_s - (time.monotonic() - started))
                await asyncio.sleep(_MIN_POLL_GAP_S)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(gap - _MIN_POLL_GAP_S):
                        await self._wake.wait()
        finally:
            if listener:
                listener.cancel()

    async def _poll_iteration(self) -> None:
        free = self.max_jobs - self.job_counter
        if self.allow_pick_jobs and free > 0:
            now_ms = int(time.time() * 1000)
            caps = [free] + [max(0, free - self.interactive_reserve)] * (len(self.queue_names) - 1)
            claimed = await self._claim(
                keys=list(self.queue_names),
                args=[now_ms, self.scan_limit, int(self.in_progress_timeout_s * 1000), *caps],
            )
            for i in range(0, len(claimed), 3):
                await self._start(claimed[i].decode(), int(float(claimed[i + 1])))
            # Took all it could: more may be waiting, so a freed slot should poll at once.
            self._backlog = len(claimed) // 3 >= caps[-1]
        await self.heart_beat()

    async def _start(self, job_id: str, score: int) -> None:
        await self.sem.acquire()
        self.job_counter += 1
        t = self.loop.create_task(self.run_job(job_id, score))
        t.add_done_callback(lambda task: self._job_done(job_id, task))
        self.tasks[job_id] = t

    def _job_done(self, job_id: str, task: asyncio.Task[Any]) -> None:
        if self.tasks.get(job_id) is task:
            del self.tasks[job_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s ended with %r", job_id, task.exception())
        self._release_sem_dec_counter_on_complete()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        if self._backlog:
            self._wake.set()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Stop taking jobs, let running ones finish (up to ``timeout_s``), then stop the main loop."""
        self.allow_pick_jobs = False
        deadline = time.monotonic() + timeout_s
        pending = [t for t in self.tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        if self.main_task is not None:
            self.main_task.cancel()

    async def _burst_done(self) -> bool:
        if self.tasks:
            return False
        async with self.pool.pipeline(transaction=False) as pipe:
            for q in self.queue_names:
                pipe.zcard(q)
            sizes = await pipe.execute()
        return not any(sizes)

    async def _listen_for_wakes(self) -> None:
        """Turn producer PUBLISHes into immediate polls; resubscribe after Redis comes back."""
        while True:
            pubsub = self.pool.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self.wake_channels)
                while True:
                    msg = await pubsub.get_message(timeout=30.0)
                    if msg is not None:
                        self._wake.set()
            except asyncio.CancelledError:
                await _quiet_close(pubsub)
                raise
            except _REDIS_DOWN:
                await _quiet_close(pubsub)
                await asyncio.sleep(0.5)

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's finish_job, removing the id from every queue this worker serves."""
        async with self.pool.pipeline(transaction=True) as tr:
            delete_keys = [in_progress_key_prefix + job_id]
            if finish:
                if result_data:
                    expire = None if keep_result_forever else result_timeout_s
                    tr.set(result_key_prefix + job_id, result_data, px=to_ms(expire))
                delete_keys += [retry_key_prefix + job_id, job_key_prefix + job_id]
                tr.zrem(abort_jobs_ss, job_id)
                for q in self.queue_names:
                    tr.zrem(q, job_id)
            elif incr_score:
                tr.zincrby(self.queue_name, incr_score, job_id)
            else:
                # Cancelled (shutdown): ready again now, not when its claim would have expired.
                for q in self.queue_names:
                    tr.zadd(q, {job_id: timestamp_ms()}, xx=True)
            tr.delete(*delete_keys)
            await tr.execute()

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq fails a job here before our function runs (its payload key vanished): give it a result."""
        async with self.pool.pipeline(transaction=True) as tr:
            tr.delete(retry_key_prefix + job_id, in_progress_key_prefix + job_id, job_key_prefix + job_id)
            tr.zrem(abort_jobs_ss, job_id)
            for q in self.queue_names:
                tr.zrem(q, job_id)
            await tr.execute()
        on_lost = self.ctx.get("on_lost_payload")
        if on_lost is not None:
            await on_lost(job_id)


async def _quiet_close(pubsub: Any) -> None:
    with contextlib.suppress(Exception):  # closing a dead connection may fail; nothing to do
        await pubsub.aclose()


def make_pool(url: str) -> ArqRedis:
    from producer_client.connection import connect
    from worker.serialization import deserialize, serialize

    pool = connect(url, socket_timeout_s=30.0, redis_class=ArqRedis)
    assert isinstance(pool, ArqRedis)
    pool.job_serializer = serialize
    pool.job_deserializer = deserialize
    return pool
