"""The async producer client: submit jobs, wait for results without polling, read them.

Waiting uses done lists: the worker pushes a token to ``done:{id}`` (and the job id to
``batch:{batch_id}:done`` when the job carried a batch id) in the same atomic step that writes the
result, and waiters BLPOP them. A waiter that pops a job's token pushes it back, so any number of
waiters on one job all wake; a batch list is consumed, so it serves one reader.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from producer_client.cancel import raise_if_cancelled
from producer_client.connection import connect, redact, redis_url
from producer_client.contract import Job, Result, parse_result
from producer_client.envvars import env_int, env_str
from producer_client.errors import (
    InvalidFeedback,
    QueueFull,
    RedisUnavailable,
    ResultTimeout,
    UnknownJob,
)
from producer_client.jobs import build_job, new_job_id
from producer_client.keys import DEFAULT_PREFIX, Keys
from producer_client.lua import lua_script
from producer_client.specs import JobSpec, check_id, job_pair
from producer_client.watch import ServedCheck
from producer_client.wire import envelopes

OnFull = Literal["raise", "wait"]

_BLOCK_SLICE_S = 5.0  # each BLPOP blocks at most this long, well under the socket timeout
_SWEEP_EVERY_S = 5.0  # as_completed re-reads every waiting job this often, in case a wake-up was lost
_SWEEP_UNWATCHED_S = 1.0  # ... and this often when more jobs wait than one BLPOP watches
_WINDOW = 256  # done lists one BLPOP watches when there is no batch list
_BATCH_POP = 1000  # ids taken from a batch done list per round trip
_CALLS_PER_ROUND = 8  # enqueue script calls pipelined in one round trip
_FULL_DELAY_S = (0.02, 0.25)  # retry delays while waiting for room in a full queue
_JOB_TTL_MS = 7 * 24 * 3600 * 1000
_NO_RESULT_PAUSE_S = 0.5


@dataclass(frozen=True)
class Handle:
    """One job's fate at enqueue time.

    ``added`` is False when the id was already queued, running or finished: nothing was enqueued
    and the earlier submission's result is the job's result (it reports to the batch id it was
    first sent with, if any).
    """

    job_id: str
    added: bool
    batch_id: str | None = None


Submitted = Handle  # the earlier name, kept for callers of submit_jobs


def new_batch_id() -> str:
    return "b-" + uuid.uuid4().hex


class Client:
    """Producer side of routeq. Cheap to create; share one per process (per event loop)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        queue: str = "interactive",
        max_queue_depth: int = 0,
        on_full: OnFull = "raise",
        full_wait_s: float = 60.0,
        url_for_errors: str = "redis",
    ) -> None:
        """``max_queue_depth`` (0 = none) caps the queue zset, in-flight jobs included; when it is
        reached, ``on_full="raise"`` raises QueueFull and ``"wait"`` waits for room, giving up with
        QueueFull after ``full_wait_s`` seconds without any progress."""
        if max_queue_depth < 0:
            raise ValueError("max_queue_depth must be >= 0 (0 = no cap)")
        self.redis = redis
        self.keys = Keys(prefix)
        self.queue = queue
        self.max_queue_depth = max_queue_depth
        self.on_full = on_full
        self.full_wait_s = full_wait_s
        self._where = url_for_errors
        self._enqueue = redis.register_script(lua_script("producer_client", "enqueue.lua"))
        self._take_token = redis.register_script(lua_script("producer_client", "take_token.lua"))
        self._feedback = redis.register_script(lua_script("producer_client", "feedback.lua"))
        self._script_loaded = False
        self.served = ServedCheck(redis, self.keys)

    @classmethod
    def from_url(cls, url: str | None = None, **kwargs: Any) -> Client:
        """A client for ``url`` (default ``$REDIS_URL``).

        Unless given as arguments, ``prefix`` comes from ``$ROUTEQ_PREFIX`` (as for the worker) and
        ``max_queue_depth`` from ``$ROUTEQ_MAX_QUEUE_DEPTH``, so operators can set backpressure
        without touching producer code.
        """
        url = url or redis_url()
        timeout = kwargs.pop("connect_timeout_s", 2.0)
        kwargs.setdefault("prefix", env_str(os.environ, "ROUTEQ_PREFIX", DEFAULT_PREFIX))
        if "max_queue_depth" not in kwargs:
            kwargs["max_queue_depth"] = env_int(os.environ, "ROUTEQ_MAX_QUEUE_DEPTH", 0, low=0)
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
        job_id = new_job_id() if job_id is None else check_id(job_id, "job_id")
        (sub,) = await self.submit_jobs([(job_id, job)], queue=queue, on_full=on_full)
        return sub.job_id

    async def submit_many(
        self,
        jobs: Iterable[JobSpec],
        *,
        queue: str | None = None,
        batch_id: str | None = None,
        chunk: int = 500,
        on_full: OnFull | None = None,
    ) -> list[Handle]:
        """Validate every job, then enqueue them all; one handle per job, in order.

        ``jobs`` holds dicts ``{id?, messages | prompt, context?, params?, metadata?}`` (a missing
        id gets a random one) or ``(id, Job)`` pairs. Validation is all or nothing: the first
        invalid job raises InvalidJob naming its index and id, before anything is enqueued.
        Enqueueing sends ``chunk`` jobs per script call and several calls per round trip; each call
        is atomic and idempotent per job id, so after QueueFull or RedisUnavailable the same call
        can simply be repeated. Every job carries ``batch_id`` (generated when not given): pass it
        to ``as_completed``/``wait_all`` to wait on one list for the whole batch.
        """
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        batch = new_batch_id() if batch_id is None else check_id(batch_id, "batch_id")
        pairs = [job_pair(spec, i) for i, spec in enumerate(jobs)]
        return await self._enqueue_all(pairs, queue=queue, batch_id=batch, chunk=chunk, on_full=on_full)

    async def submit_jobs(
        self,
        jobs: Sequence[tuple[str, Job]],
        *,
        queue: str | None = None,
        batch_id: str | None = None,
        on_full: OnFull | None = None,
    ) -> list[Handle]:
        """Enqueue validated jobs in one atomic script call (``submit_many`` chunks large lists)."""
        return await self._enqueue_all(
            list(jobs), queue=queue, batch_id=batch_id, chunk=max(1, len(jobs)), on_full=on_full
        )

    async def _enqueue_all(
        self,
        pairs: list[tuple[str, Job]],
        *,
        queue: str | None,
        batch_id: str | None,
        chunk: int,
        on_full: OnFull | None,
    ) -> list[Handle]:
        queue_key = self.keys.queue(queue or self.queue)
        policy = on_full or self.on_full
        now_ms = int(time.time() * 1000)
        payloads = envelopes([job for _, job in pairs], enqueue_ms=now_ms, batch_id=batch_id)
        head: list[Any] = [
            self.keys.prefix, self.max_queue_depth, self.keys.wake(queue_key), _JOB_TTL_MS, now_ms,
        ]
        added: list[bool] = [False] * len(pairs)
        pending = deque(range(len(pairs)))
        last_progress = time.monotonic()
        delay = _FULL_DELAY_S[0]
        while pending:
            calls: list[list[int]] = []
            while pending and len(calls) < _CALLS_PER_ROUND:
                calls.append([pending.popleft() for _ in range(min(chunk, len(pending)))])
            argvs = [head + [x for i in idxs for x in (pairs[i][0], payloads[i])] for idxs in calls]
            refused: list[int] = []
            for idxs, (new, dups, full) in zip(calls, await self._run_enqueue(queue_key, argvs), strict=True):
                for pos in new:
                    added[idxs[int(pos) - 1]] = True
                refused += [idxs[int(pos) - 1] for pos in full]
                if len(new) + len(dups):
                    last_progress = time.monotonic()
                    delay = _FULL_DELAY_S[0]
            if not refused:
                continue
            pending.extendleft(reversed(refused))
            if policy == "raise" or time.monotonic() - last_progress >= self.full_wait_s:
                waited = "" if policy == "raise" else f" for {self.full_wait_s:g}s"
                raise QueueFull(
                    f"queue {queue_key} is at its maximum depth {self.max_queue_depth}{waited}: "
                    f"{len(pending)} job(s) not enqueued (first: {pairs[pending[0]][0]}), "
                    f"{len(pairs) - len(pending)} enqueued or already known; "
                    "submitting the same jobs again is safe (idempotent per id)"
                )
            await asyncio.sleep(delay)
            raise_if_cancelled()
            delay = min(delay * 2, _FULL_DELAY_S[1])
        return [Handle(job_id, added[i], batch_id) for i, (job_id, _) in enumerate(pairs)]

    async def _run_enqueue(self, queue_key: str, argvs: list[list[Any]]) -> list[Any]:
        """Run enqueue.lua once per argv, all in one pipelined round trip (two if Redis lost the script)."""
        if not self._script_loaded:  # else the first round trip would carry every payload for nothing
            await self._call(self.redis.script_load(self._enqueue.script))
            self._script_loaded = True
        replies: list[Any] = [None] * len(argvs)
        todo = list(range(len(argvs)))
        for _ in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for k in todo:
                    pipe.evalsha(self._enqueue.sha, 1, queue_key, *argvs[k])
                out = await self._call(pipe.execute(raise_on_error=False))
            missing = []
            for k, reply in zip(todo, out, strict=True):
                if isinstance(reply, NoScriptError):
                    missing.append(k)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    replies[k] = reply
            if not missing:
                return replies
            await self._call(self.redis.script_load(self._enqueue.script))
            todo = missing
        raise RedisUnavailable(f"Redis at {self._where} keeps losing the enqueue script")

    # -- feedback ------------------------------------------------------------------------------

    async def feedback(
        self, job_id: str, score: float | None = None, label: str | None = None, comment: str | None = None
    ) -> bool:
        """Record how good a job's answer was: ``score`` in [0, 1] and/or a ``label``.

        It joins the job's routing (rule, served model, experiment variant, task type, tenant) in
        the rollups that reports and ``routeq suggest`` read, for ``ROUTEQ_FEEDBACK_TTL_S`` (30 days)
        after the job finished, even once its result expired. A second feedback for the same job
        replaces the first. Returns True if it replaced one; UnknownJob for a job routeq has no
        record of; InvalidFeedback for a score or label it cannot take.
        """
        args: list[str | int] = [_score_arg(score), _label_arg(label), comment or "", int(time.time() * 1000),
                                 FEEDBACK_LABEL_CAP]
        if args[0] == "" and args[1] == "":
            raise InvalidFeedback("give a score, a label, or both")
        reply = await self._call(self._feedback(
            keys=[self.keys.feedback_ref(check_id(job_id, "job_id")), self.keys.feedback(job_id)], args=args
        ))
        if _text(reply[0]) == "unknown":
            raise UnknownJob(f"no finished job {job_id!r} to give feedback on (unknown id, not finished "
                             "yet, or finished longer ago than ROUTEQ_FEEDBACK_TTL_S)")
        return bool(int(reply[1]))

    # -- reading results ----------------------------------------------------------------------

    async def get(self, job_id: str) -> Result | None:
        """The result if the job has finished, else None. Never waits."""
        raw = await self._call(self.redis.get(self.keys.result(job_id)))
        return None if raw is None else parse_result(raw)

    async def result(self, job_id: str, timeout: float = 60.0, *, queue: str | None = None) -> Result:
        """Wait (without polling) until the job's result exists; ``ResultTimeout`` after ``timeout``.

        After a few seconds without a result, a warning is logged once if no live worker serves
        ``queue`` (default: this client's queue): a wait that can never end says so.
        """
        deadline = time.monotonic() + timeout
        done_key = self.keys.done(job_id)
        watch = self.served.watch(queue or self.queue)
        while True:
            raise_if_cancelled()
            res = await self.get(job_id)
            if res is not None:
                return res
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResultTimeout(f"no result for job {job_id} after {timeout:g}s")
            await watch.check()
            popped = await self._blpop([done_key], max(0.01, min(left, _BLOCK_SLICE_S)))
            if popped is not None:
                await self._give_back(done_key, job_id, popped[1])

    async def as_completed(
        self,
        job_ids: Iterable[str],
        *,
        batch_id: str | None = None,
        timeout: float = 3600.0,
        queue: str | None = None,
    ) -> AsyncGenerator[Result, None]:
        """Yield each job's result once, as jobs finish, without polling each job.

        With ``batch_id`` (jobs sent by ``submit_many``), BLPOP on the batch's done list wakes for
        any of its jobs and says which finished; that list is consumed, so give a batch one reader.
        Without it, one BLPOP watches the done lists of up to 256 waiting jobs, and a wake-up reads
        all their results in one MGET. Either way a wake-up costs work bounded by what finished or
        by the window, not by the number still waiting. Every waiting job is also re-read at the
        start and then every 5 s, which catches results whose wake-up went elsewhere (another
        reader, a job first submitted under another batch id); every 1 s while more than 256 jobs
        wait without a batch id, so prefer a batch id for many jobs. ``ResultTimeout`` after
        ``timeout`` seconds.
        """
        pending: dict[str, None] = dict.fromkeys(job_ids)
        deadline = time.monotonic() + timeout
        served = self.served.watch(queue or self.queue)
        watch: _BatchList | _DoneWindow = (
            _BatchList(self, self.keys.batch_done(batch_id)) if batch_id else _DoneWindow(self, list(pending))
        )
        next_sweep = 0.0
        while pending:
            raise_if_cancelled()
            now = time.monotonic()
            if now >= next_sweep:
                candidates = list(pending)
                # Jobs beyond the window have no watcher: sweep them sooner.
                unwatched = batch_id is None and len(pending) > _WINDOW
                next_sweep = now + (_SWEEP_UNWATCHED_S if unwatched else _SWEEP_EVERY_S)
            else:
                left = deadline - now
                if left <= 0:
                    raise ResultTimeout(f"{len(pending)} job(s) still unfinished after {timeout:g}s")
                await served.check()
                candidates = await watch.wait(max(0.01, min(left, next_sweep - now)), pending)
            for res in await self.get_many(candidates):
                if res is not None and res.job_id in pending:
                    del pending[res.job_id]
                    yield res

    async def wait_all(
        self,
        job_ids: Iterable[str],
        *,
        batch_id: str | None = None,
        timeout: float = 3600.0,
        queue: str | None = None,
    ) -> list[Result]:
        """Every result, in the order of ``job_ids``."""
        ids = list(job_ids)
        results = self.as_completed(ids, batch_id=batch_id, timeout=timeout, queue=queue)
        got = {r.job_id: r async for r in results}
        return [got[j] for j in ids]

    async def get_many(self, job_ids: Sequence[str], *, chunk: int = 1000) -> list[Result | None]:
        """Results (None where unfinished) in the order given: MGETs of ``chunk`` keys, one round trip."""
        if not job_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in range(0, len(job_ids), chunk):
                pipe.mget([self.keys.result(j) for j in job_ids[i : i + chunk]])
            parts = await self._call(pipe.execute())
        return [None if r is None else parse_result(r) for part in parts for r in part]

    async def queue_depth(self, queue: str | None = None) -> int:
        """Jobs in the queue zset: waiting and in flight (arq keeps running jobs there)."""
        depth: int = await self._call(self.redis.zcard(self.keys.queue(queue or self.queue)))
        return depth

    async def _give_back(self, done_key: str, job_id: str, token: Any) -> None:
        """Return a popped token so other waiters wake too; the list keeps the result's TTL. A token
        without a result (deleted by hand) must not make a waiter spin: pause instead."""
        ttl = await self._call(self._take_token(keys=[done_key, self.keys.result(job_id)], args=[token]))
        if int(ttl) < 0:
            await asyncio.sleep(_NO_RESULT_PAUSE_S)

    async def _blpop(self, keys: list[str], seconds: float) -> Any:
        # Redis >= 6 takes fractional BLPOP timeouts; redis-py's annotation says int.
        return await self._call(self.redis.blpop(keys, timeout=seconds))  # type: ignore[arg-type]

    async def _call(self, aw: Any) -> Any:
        try:
            return await aw
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RedisUnavailable(f"Redis at {self._where} is unreachable: {exc}") from None


class _BatchList:
    """Wake-ups from a batch's done list: the ids of finished jobs, consumed as read."""

    def __init__(self, client: Client, key: str) -> None:
        self._client = client
        self._key = key

    async def wait(self, block: float, pending: Mapping[str, None]) -> list[str]:
        c = self._client
        ready = await c._call(c.redis.lpop(self._key, _BATCH_POP))
        if ready:
            return [_text(x) for x in ready]
        popped = await c._blpop([self._key], block)
        return [] if popped is None else [_text(popped[1])]


class _DoneWindow:
    """Wake-ups from per-job done lists, watching a window of waiting jobs refilled in given order."""

    def __init__(self, client: Client, job_ids: list[str]) -> None:
        self._client = client
        self._feed = iter(job_ids)
        self._window: list[str] = []

    async def wait(self, block: float, pending: Mapping[str, None]) -> list[str]:
        c = self._client
        self._window = [j for j in self._window if j in pending]
        while len(self._window) < _WINDOW:
            nxt = next(self._feed, None)
            if nxt is None:
                break
            if nxt in pending:
                self._window.append(nxt)
        popped = await c._blpop([c.keys.done(j) for j in self._window], block)
        if popped is None:
            return []
        done_key = _text(popped[0])
        await c._give_back(done_key, done_key.removeprefix(c.keys.done("")), popped[1])
        return self._window


#: Distinct feedback labels the rollups keep (expiring with them); later ones count as ``other``.
FEEDBACK_LABEL_CAP = 100


def _score_arg(score: float | None) -> str:
    if score is None:
        return ""
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise InvalidFeedback(f"score must be a number in [0, 1], got {score!r}")
    return repr(float(score))


def _label_arg(label: str | None) -> str:
    if label is None:
        return ""
    if not isinstance(label, str) or not 0 < len(label) <= 64 or "|" in label or not label.isprintable():
        raise InvalidFeedback(f"label must be 1-64 printable characters without '|', got {label!r}")
    return label


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
