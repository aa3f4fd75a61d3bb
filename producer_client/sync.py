"""A blocking client for threaded code (WSGI backends, scripts), built on the async one.

One private event loop runs in a daemon thread and owns the async Client and its Redis pool; each
method hands a coroutine to that loop and blocks the calling thread on the answer. Any number of
threads can share one SyncClient: their calls run concurrently on the loop, over pooled
connections. This keeps one implementation of the protocol instead of a second, synchronous one.

Forks: a process forked after the client was made (gunicorn ``--preload``, uWSGI's default) has no
loop thread (threads do not survive ``fork``), so the child would wait forever. Every call checks
the process id before it builds anything on the client and, in a new process, builds a fresh
loop, thread and connection pool. The parent's loop and client are kept referenced in the child
and never finalised there: closing them would unregister the parent's sockets from the epoll
instance both processes share, and stall the parent. Every call also has a deadline, so no
mistake blocks a request thread for ever.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from producer_client.client import Client, Handle, OnFull
from producer_client.contract import Result
from producer_client.errors import RedisUnavailable
from producer_client.specs import JobSpec

T = TypeVar("T")
_END = object()
#: What a forked child inherited from its parent's SyncClients: kept alive, never closed (see above).
_INHERITED: list[object] = []


class SyncClient:
    """The methods of ``Client``, blocking. Create one per process and ``close()`` it at exit."""

    def __init__(self, make_client: Callable[[], Client], *, call_timeout_s: float = 60.0) -> None:
        """``make_client`` runs on the private loop, so the client's connections belong to it.
        ``call_timeout_s`` bounds every call that does not wait for results (those add their own
        ``timeout``)."""
        self._make_client = make_client
        self.call_timeout_s = call_timeout_s
        self._closed = False
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="routeq-client", daemon=True)
        self._thread.start()

        async def build() -> Client:
            return self._make_client()

        try:
            self._client = self._run(build())
        except BaseException:
            self._stop_loop()
            raise

    @property
    def client(self) -> Client:
        """The async client of this process (a forked child gets its own on first use)."""
        if os.getpid() != self._pid:
            self._after_fork()
        return self._client

    def _after_fork(self) -> None:
        _INHERITED.append((self._loop, self._thread, self._client))
        self._start()

    @classmethod
    def from_url(cls, url: str | None = None, *, call_timeout_s: float = 60.0, **kwargs: Any) -> SyncClient:
        """Like ``Client.from_url`` (``$REDIS_URL``, ``$ROUTEQ_PREFIX``, ``$ROUTEQ_MAX_QUEUE_DEPTH``);
        ``call_timeout_s`` bounds each call as in the constructor."""
        return cls(lambda: Client.from_url(url, **kwargs), call_timeout_s=call_timeout_s)

    def close(self) -> None:
        """Close the Redis pool and stop the loop thread; idempotent."""
        if self._closed:
            return
        try:
            self._run(self.client.close())
        finally:
            self._closed = True
            self._stop_loop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Client's methods -------------------------------------------------------------------

    def submit(
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
        return self._run(
            self.client.submit(
                messages, prompt=prompt, context=context, params=params, metadata=metadata,
                job_id=job_id, queue=queue, on_full=on_full,
            )
        )

    def submit_many(
        self,
        jobs: Iterable[JobSpec],
        *,
        queue: str | None = None,
        batch_id: str | None = None,
        chunk: int = 500,
        on_full: OnFull | None = None,
    ) -> list[Handle]:
        specs = list(jobs)  # iterate the caller's iterable in the caller's thread
        return self._run(
            self.client.submit_many(specs, queue=queue, batch_id=batch_id, chunk=chunk, on_full=on_full)
        )

    def get(self, job_id: str) -> Result | None:
        return self._run(self.client.get(job_id))

    def get_many(self, job_ids: Sequence[str]) -> list[Result | None]:
        return self._run(self.client.get_many(job_ids))

    def result(self, job_id: str, timeout: float = 60.0) -> Result:
        return self._run(self.client.result(job_id, timeout=timeout), wait_s=timeout)

    def wait_all(
        self, job_ids: Iterable[str], *, batch_id: str | None = None, timeout: float = 3600.0
    ) -> list[Result]:
        waiting = self.client.wait_all(list(job_ids), batch_id=batch_id, timeout=timeout)
        return self._run(waiting, wait_s=timeout)

    def as_completed(
        self, job_ids: Iterable[str], *, batch_id: str | None = None, timeout: float = 3600.0
    ) -> Iterator[Result]:
        """A plain iterator over results as jobs finish; leaving it early releases its wait."""
        agen = self.client.as_completed(list(job_ids), batch_id=batch_id, timeout=timeout)
        try:
            while True:
                item = self._run(_next(agen), wait_s=timeout)
                if item is _END:
                    return
                assert isinstance(item, Result)
                yield item
        finally:
            if not self._closed:
                self._run(agen.aclose())

    def feedback(
        self, job_id: str, score: float | None = None, label: str | None = None, comment: str | None = None
    ) -> bool:
        return self._run(self.client.feedback(job_id, score, label, comment))

    def queue_depth(self, queue: str | None = None) -> int:
        return self._run(self.client.queue_depth(queue))

    # -- plumbing -------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], *, wait_s: float = 0.0) -> T:
        """Run ``coro`` on the loop; give up after ``call_timeout_s`` (plus ``wait_s`` for waits)."""
        if self._closed:
            coro.close()
            raise RuntimeError("SyncClient is closed")
        if os.getpid() != self._pid:
            self._after_fork()  # forked: the loop thread stayed in the parent
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncClient called from its own event loop; use the async Client there")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        limit = self.call_timeout_s + wait_s
        try:
            return future.result(timeout=limit)
        except TimeoutError:
            if future.done():
                raise  # the call's own timeout (ResultTimeout), not the deadline
            future.cancel()
            raise RedisUnavailable(f"no answer within {limit:g}s (SyncClient call deadline)") from None
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt in the waiting thread: stop the work too
            raise

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


async def _next(agen: AsyncGenerator[Result, None]) -> object:
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        return _END
