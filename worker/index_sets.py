"""Index sets: sorted sets that list keys of one kind (budget counters, circuits, account blocks),
each scored by when its key expires, so operators' listings cost the number of such keys instead
of a SCAN of the whole keyspace. The scripts that write a key add it; readers prune."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Entries are dropped this long after their key expired: a margin for clock skew between the
#: writer and the reader (a key read after it expired is absent anyway, so nothing shows twice).
GRACE_S = 3600


async def live_members(redis: Redis, index: str, now: float, *, per_second: int = 1) -> list[str]:
    """The index's members after dropping those that expired more than :data:`GRACE_S` before
    ``now`` (unix seconds); ``per_second`` is the unit of the scores (1: seconds, 1000: ms)."""
    cutoff = int((now - GRACE_S) * per_second)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(index, "-inf", f"({cutoff}")
        pipe.zrange(index, 0, -1)
        _, members = await pipe.execute()
    return [m.decode() if isinstance(m, bytes) else str(m) for m in members]
