"""Queue depth from the queue zsets, without touching the jobs themselves.

A queue zset holds every job not yet finished, scored by when it is ready; a claimed job's score
moves to its claim's expiry, in the future. So ``depth`` (ZCARD) counts waiting and running jobs,
``ready`` (score up to now) the ones waiting, and the lowest score, when it is in the past, says
how long the oldest waiting job has waited. Jobs deferred to a later time count as not ready,
like running ones: from the zset alone the two cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from producer_client.keys import QUEUES, Keys


@dataclass(frozen=True)
class QueueState:
    name: str
    depth: int  # waiting + running (+ deferred)
    ready: int  # waiting to be claimed now
    oldest_ready_age_s: float | None  # None: nothing is waiting

    @property
    def running(self) -> int:
        """Claimed (or deferred) jobs: in the zset with a score in the future."""
        return self.depth - self.ready

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "depth": self.depth, "ready": self.ready, "running": self.running,
                "oldest_ready_age_s": self.oldest_ready_age_s}


def queue_names(*groups: Iterable[str]) -> list[str]:
    """The default queues first, then every other name given, each once.

    No SCAN for queue keys: on a Redis holding millions of results it would walk them all.
    Queues nobody serves and nobody names stay unseen; ``--queue`` names them.
    """
    return list(dict.fromkeys([*QUEUES, *(q for g in groups for q in g)]))


async def read_queues(redis: Redis, keys: Keys, names: Sequence[str], now_ms: int) -> list[QueueState]:
    """Each queue's state in one round trip (three O(log n) reads per queue)."""
    if not names:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            key = keys.queue(name)
            pipe.zcard(key)
            pipe.zcount(key, "-inf", now_ms)
            pipe.zrange(key, 0, 0, withscores=True)
        replies: list[Any] = await pipe.execute()
    out = []
    for i, name in enumerate(names):
        depth, ready, head = replies[3 * i : 3 * i + 3]
        age = None
        if ready and head:
            age = max(0.0, (now_ms - float(head[0][1])) / 1000)
        out.append(QueueState(name, int(depth), int(ready), age))
    return out
