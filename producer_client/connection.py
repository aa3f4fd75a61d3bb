"""Redis connections from ``REDIS_URL``: TLS (``rediss://``), AUTH/ACL users, bounded waits.

A producer must get a clear error, not a hang, when Redis is down: every socket has a timeout,
and a dropped connection is retried a few times with backoff before ``RedisUnavailable``.
No ``health_check_interval``: with a Retry, redis-py 5 recurses connect → check_health → PING →
connect without end when Redis accepts connections but never answers (redis/redis-py#3745);
TCP keepalive finds dead peers instead.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from producer_client.envvars import SettingsError, env_str
from producer_client.lean_redis import lean_pool

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def redis_url(env: dict[str, str] | None = None) -> str:
    """``REDIS_URL``; unset or empty means the default, as for every setting."""
    return env_str(env if env is not None else os.environ, "REDIS_URL", DEFAULT_URL)


def check_redis_url(url: str, *, name: str = "REDIS_URL") -> str:
    """``url`` if redis-py can use it, else a SettingsError naming what is wrong (password hidden)."""
    shown = redact(url) if "://" in url else url
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as exc:
        raise SettingsError(f"{name}={shown!r}: {exc}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"{name}={shown!r}: expected redis://host:port/db, rediss://… or unix://path")
    if parts.scheme != "unix" and not parts.hostname:
        raise SettingsError(f"{name}={shown!r}: no host")
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise SettingsError(f"{name}={shown!r}: the database ({db!r}) must be a number")
    del port
    return url


def redact(url: str) -> str:
    """The URL without its password, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def connect(
    url: str,
    *,
    connect_timeout_s: float = 2.0,
    socket_timeout_s: float | None = 10.0,
    retries: int = 3,
    max_connections: int | None = None,
    redis_class: type[Redis] = Redis,
) -> Redis:
    """A pooled async client; connections open lazily, so this never blocks. A URL redis-py
    cannot use is a SettingsError naming ``REDIS_URL``."""
    check_redis_url(url)
    pool = lean_pool(
        url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_keepalive=True,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
        max_connections=max_connections,
    )
    client: Redis = redis_class(connection_pool=pool)
    client.auto_close_connection_pool = True  # closing the client closes the pool it owns
    return client
