"""routeq's producer side: submit completion jobs to Redis and read their results.

Light on purpose (redis, pydantic, orjson): a web backend installs it without the worker. Names
are imported on first use, so ``producer_client.money`` or ``.contract`` alone load no Redis client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producer_client.client import Client, Handle
    from producer_client.contract import Job, Result
    from producer_client.errors import (
        InvalidFeedback,
        InvalidJob,
        QueueFull,
        RedisUnavailable,
        ResultTimeout,
        RouteqError,
        UnknownJob,
    )
    from producer_client.sync import SyncClient

_HOME = {
    "Client": "client",
    "Handle": "client",
    "Job": "contract",
    "Result": "contract",
    "InvalidFeedback": "errors",
    "InvalidJob": "errors",
    "QueueFull": "errors",
    "RedisUnavailable": "errors",
    "ResultTimeout": "errors",
    "RouteqError": "errors",
    "UnknownJob": "errors",
    "SyncClient": "sync",
}

__all__ = [
    "Client",
    "Handle",
    "InvalidFeedback",
    "InvalidJob",
    "Job",
    "QueueFull",
    "RedisUnavailable",
    "Result",
    "ResultTimeout",
    "RouteqError",
    "SyncClient",
    "UnknownJob",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'producer_client' has no attribute {name!r}")
    return getattr(import_module(f"producer_client.{home}"), name)
