"""The demo's keys in a user's Redis: one fixed prefix, cleared before a run, every key expiring.

A fixed prefix (:data:`DEMO_PREFIX`) rather than a random one, so that ``routeq dashboard --prefix
routeq-demo:`` shows the last demo and ``routeq demo --clean`` removes it, while a production worker
(prefix ``routeq:``) never sees the demo's jobs. The demo's worker writes short TTLs itself
(:data:`RESULT_TTL_S`, :data:`ROLLUP_DAYS`); the records that have an owner instead of a TTL (the
decision stream, the rules versions the adaptive demo pushes, the dead-letter index, ...) get one
here when the demo ends, so nothing a demo leaves behind lives forever.
"""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis

from producer_client.keys import glob_escape

DEMO_PREFIX: Final = "routeq-demo:"
#: Results, done lists and feedback references of demo jobs (the worker's ROUTEQ_RESULT_TTL_S).
RESULT_TTL_S: Final = 3600
#: Rollups (ROUTEQ_ROLLUP_DAYS): what ``routeq dashboard`` and ``routeq report`` read.
ROLLUP_DAYS: Final = 1
#: Every other demo key that would otherwise never expire lives this long (as the rollups).
KEEP_S: Final = ROLLUP_DAYS * 86_400
_SCAN_COUNT: Final = 1000
_BATCH: Final = 500


async def demo_keys(redis: Redis, prefix: str = DEMO_PREFIX) -> list[bytes]:
    """Every key under ``prefix``."""
    return [key async for key in redis.scan_iter(match=glob_escape(prefix) + "*", count=_SCAN_COUNT)]


async def delete_prefix(redis: Redis, prefix: str = DEMO_PREFIX) -> int:
    """Remove every key under ``prefix`` (the demo's own); returns how many."""
    doomed = await demo_keys(redis, prefix)
    for start in range(0, len(doomed), _BATCH):
        await redis.delete(*doomed[start : start + _BATCH])
    return len(doomed)


async def expire_untimed(redis: Redis, prefix: str = DEMO_PREFIX, seconds: int = KEEP_S) -> list[str]:
    """Give every key under ``prefix`` that has no TTL one of ``seconds``; returns their names.

    Run once nothing writes under the prefix any more (the demo's worker has stopped)."""
    keys = await demo_keys(redis, prefix)
    untimed: list[bytes] = []
    for start in range(0, len(keys), _BATCH):
        chunk = keys[start : start + _BATCH]
        async with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.ttl(key)
            ttls = await pipe.execute()
        untimed += [key for key, ttl in zip(chunk, ttls, strict=True) if ttl == -1]
    if untimed:
        async with redis.pipeline(transaction=False) as pipe:
            for key in untimed:
                pipe.expire(key, seconds)
            await pipe.execute()
    return sorted(key.decode() for key in untimed)
