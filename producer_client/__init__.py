"""routeq's producer side: submit completion jobs to Redis and read their results.

Light on purpose (redis, pydantic, orjson): a web backend installs it without the worker.
"""

from producer_client.client import Client, Handle
from producer_client.contract import Job, Result
from producer_client.errors import InvalidJob, QueueFull, RedisUnavailable, ResultTimeout, RouteqError
from producer_client.sync import SyncClient

__all__ = [
    "Client",
    "Handle",
    "InvalidJob",
    "Job",
    "QueueFull",
    "RedisUnavailable",
    "Result",
    "ResultTimeout",
    "RouteqError",
    "SyncClient",
]
