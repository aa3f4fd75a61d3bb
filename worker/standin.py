"""An in-process Redis stand-in (fakeredis with Lua) for the demo when no Redis answers.

Only the demo uses it: production and the integration tests run on a real redis-server.
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import Redis


def standin_pair() -> tuple[ArqRedis, Redis]:
    """A worker pool and a producer client sharing one in-memory server."""
    try:
        from fakeredis import FakeServer
        from fakeredis.aioredis import FakeAsyncRedisMixin
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "no Redis reachable and fakeredis is not installed: start Redis or `pip install 'routeq[dev]'`"
        ) from exc

    class FakeArqRedis(FakeAsyncRedisMixin, ArqRedis):  # type: ignore[misc]
        pass

    class FakeRedis(FakeAsyncRedisMixin, Redis):  # type: ignore[misc]
        pass

    server: Any = FakeServer()
    return FakeArqRedis(server=server), FakeRedis(server=server)


async def redis_answers(url: str, timeout_s: float = 0.5) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(await client.ping())
    except Exception:  # any failure means "not usable here"
        return False
    finally:
        await client.aclose()
