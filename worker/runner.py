"""routeq's worker process loop: arq's worker shell, with claiming, running and finishing our own.

From arq we keep the process shell: start-up and shutdown hooks, signal handling and the
graceful drain (``job_completion_wait``: on SIGTERM no new jobs, running ones get the grace,
the rest are cancelled). What we replace, and why (measured in bench/, see the README):

- claiming: one Lua call claims every job there is room for and returns each one's envelope
  and try count (arq: four round trips per job, and in-flight jobs stay at the head of the
  queue, so every poll re-reads them and cluster throughput caps at ``queue_read_limit``);
- finishing: one Lua call settles the budget, writes the result, wakes waiters and drops the
  job's keys (arq: a result write plus a MULTI of its own);
- waking: producers PUBLISH after enqueueing, so an idle worker starts within milliseconds
  instead of at its next 0.5 s poll; a freed slot with a backlog also triggers a poll;
- queues: several queues served in priority order, the first keeping a reserve of slots that
  later queues cannot fill;
- Redis outages: a connection error no longer ends the main loop; the worker backs off and
  carries on when Redis returns;
- the envelope is checked whole before anything acts on it (``worker/envelope.py``), and try
  counts are ours, so no envelope content can make a job loop or end without a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq.worker import Worker, func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from producer_client.cancel import raise_if_cancelled
from producer_client.keys import JOB_FUNCTION
from worker.claims import Claimed, Claimer, Control
from worker.job import JobRunner

log = logging.getLogger("routeq.worker")

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_MIN_POLL_GAP_S = 0.002  # coalesce bursts of wake-ups into one claim

OnControl = Callable[[Control], Awaitable[None]]


async def _not_called(ctx: dict[str, Any]) -> None:  # pragma: no cover - arq needs a function
    raise RuntimeError("routeq runs jobs itself; arq's run_job is not used")


class RouteqWorker(Worker):
    def __init__(
        self,
        *,
        claimer: Claimer,
        jobs: JobRunner,
        interactive_reserve: int = 0,
        wake_channels: tuple[str, ...] = (),
        on_control: OnControl | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            functions=[func(_not_called, name=JOB_FUNCTION)], queue_name=claimer.queue_keys[0],
            keep_result=0, max_tries=1, health_check_interval=3600, **kwargs,
        )
        self.claimer = claimer
        self.jobs = jobs
        self.queue_names = claimer.queue_keys
        self.interactive_reserve = interactive_reserve if len(self.queue_names) > 1 else 0
        self.wake_channels = wake_channels
        self.on_control = on_control
        self._wake = asyncio.Event()
        self._backlog = False
        self.redis_failures = 0

    async def main(self) -> None:
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        log.info("worker ready: queues=%s max_jobs=%d", ",".join(self.queue_names), self.max_jobs)
        listener = asyncio.create_task(self._listen_for_wakes()) if self.wake_channels else None
        try:
            while True:
                raise_if_cancelled()
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
                await asyncio.wait({listener}, timeout=2.0)

    async def _poll_iteration(self) -> None:
        free = self.max_jobs - self.job_counter if self.allow_pick_jobs else 0
        caps = [free] + [max(0, free - self.interactive_reserve)] * (len(self.queue_names) - 1)
        control, claimed = await self.claimer.claim(caps)
        for job in claimed:
            self._start(job)
        # Took all it could: more may be waiting, so a freed slot should poll at once. A poll with
        # every slot busy (a timer tick, a producer's wake) learns nothing about the backlog, so it
        # leaves the flag as it was: clearing it made freed slots wait for the next 0.5 s tick.
        if free > 0:
            self._backlog = len(claimed) >= caps[-1]
        if self.on_control is not None:
            await self.on_control(control)

    def _start(self, job: Claimed) -> None:
        self.job_counter += 1
        t = self.loop.create_task(self._run(job))
        t.add_done_callback(lambda task: self._job_done(job.job_id, task))
        self.tasks[job.job_id] = t

    async def _run(self, job: Claimed) -> None:
        if job.has_result:
            log.info("job %s already has a result; not running it again", job.job_id)
            await self.claimer.drop(job)
            return
        log.debug("→ %s:complete try=%d", job.job_id, job.job_try)
        try:
            async with asyncio.timeout(self.job_timeout_s):
                await self.jobs.run(job)
            self.jobs_complete += 1
        except asyncio.CancelledError:
            with contextlib.suppress(*_REDIS_DOWN):
                # Cut by shutdown: ready again now, not when its claim would have expired.
                await asyncio.shield(self.claimer.release(job))
            raise
        except TimeoutError:
            log.error("job %s ran past the job timeout (%ss); it runs again after its claim expires",
                      job.job_id, self.job_timeout_s)

    def _job_done(self, job_id: str, task: asyncio.Task[Any]) -> None:
        if self.tasks.get(job_id) is task:
            del self.tasks[job_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("job %s ended with %r", job_id, task.exception())
        self.job_counter -= 1
        if self._backlog:
            self._wake.set()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Stop taking jobs, let running ones finish (up to ``timeout_s``), then stop the main loop."""
        self.allow_pick_jobs = False
        pending = [t for t in self.tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, timeout_s))
        for t in self.tasks.values():
            t.cancel()
        if self.main_task is not None:
            self.main_task.cancel()

    async def close(self) -> None:
        """Like arq's close, without its shared health key and with the non-deprecated aclose."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None

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
                    raise_if_cancelled()
                    msg = await pubsub.get_message(timeout=30.0)
                    if msg is not None:
                        self._wake.set()
            except asyncio.CancelledError:
                await _quiet_close(pubsub)
                raise
            except _REDIS_DOWN:
                await _quiet_close(pubsub)
                await asyncio.sleep(0.5)


async def _quiet_close(pubsub: Any) -> None:
    with contextlib.suppress(Exception):  # closing a dead connection may fail; nothing to do
        await pubsub.aclose()
