"""An in-process Redis stand-in (fakeredis with Lua) for the demo when no Redis answers.

Only the demo uses it: production and the integration tests run on a real redis-server.
"""

from __future__ import annotations

from redis.asyncio import Redis


def standin_pair() -> tuple[Redis, Redis]:
    """A worker pool and a producer client sharing one in-memory server."""
    from fakeredis import FakeAsyncRedis, FakeServer

    server = FakeServer()
    return FakeAsyncRedis(server=server), FakeAsyncRedis(server=server)


async def redis_answers(url: str, timeout_s: float = 0.5) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(await client.ping())
    except Exception:  # any failure means "not usable here"
        return False
    finally:
        await client.aclose()
