"""A Lua script whose calls from concurrent jobs share round trips.

Jobs that finish in the same turn of the event loop (a burst of upstream answers arrives
together) each call the finish script. Sent one by one, every call pays a socket write and a read
of its own, about as much worker CPU as the rest of the job's Redis work; here the calls made in
one turn go out as one pipeline (``EVALSHA`` each, no transaction: each call is atomic on its
own) and every caller gets its own reply or error. A lone call waits for nothing: the batch is
sent when the loop turn that queued it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

_Call = tuple[Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class BatchedScript:
    def __init__(self, redis: Redis, script: str, *, max_batch: int = 256) -> None:
        self.redis = redis
        self.script = script
        self.max_batch = max_batch
        self._sha: str | None = None
        self._pending: list[_Call] = []
        self._scheduled = False

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self.max_batch):
            task = asyncio.ensure_future(self._send(pending[start:start + self.max_batch]))
            task.add_done_callback(_consume)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            replies = await self._execute(batch)
        except Exception as exc:  # the connection failed: every caller sees it (and retries)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (the loop is closing): so are the callers
            for _, _, future in batch:
                future.cancel()
            raise
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue  # the caller was cancelled
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        if self._sha is None:
            self._sha = await self.redis.script_load(self.script)
        replies = await self._pipeline(batch)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:  # Redis restarted or its scripts were flushed: load it, run just those again
            self._sha = await self.redis.script_load(self.script)
            for i, reply in zip(missing, await self._pipeline([batch[i] for i in missing]), strict=True):
                replies[i] = reply
        return replies

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(self._sha, len(keys), *keys, *args)  # type: ignore[arg-type]
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


def _consume(task: asyncio.Task[None]) -> None:
    """The batch's outcome was handed to its callers; only keep an unexpected error from being
    reported as never retrieved."""
    if not task.cancelled():
        task.exception()
