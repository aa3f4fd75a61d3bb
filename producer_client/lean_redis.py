"""A thin layer over redis-py's asyncio connection pool that takes two costs off every command.

redis-py 5 wraps each send in ``asyncio.wait_for`` when ``socket_timeout`` is set, which makes
a new task per command; and its pool polls every connection it hands out with
``can_read_destructive`` (a non-blocking read) to catch one returned with unread data. Together
they were about 7% of a worker's CPU at a thousand jobs a second (see the README's benchmarks).

- ``LeanConnection.send_packed_command`` bounds the send with ``asyncio.timeout`` instead, and
  only when the socket did not take the whole command at once (the only case where the send can
  wait): the same limit and the same errors, no task. (It also sidesteps Python 3.11's
  ``wait_for`` losing a cancellation that lands as the send completes.)
- ``LeanPool.ensure_connection`` skips the poll for a connection that is connected: redis-py
  itself disconnects a connection whenever a command fails or is cancelled mid-reply (both in
  ``read_response`` and in ``send_packed_command``), so a connected one in the pool is clean.

Everything else is redis-py's own code. Upstream: a ``send_packed_command`` without
``wait_for`` (redis-py's sync client already does this), and an opt-out of the checkout poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis.asyncio.connection import AbstractConnection, Connection, ConnectionPool, SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class _LeanSend:
    async def send_packed_command(
        self: Any, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if not self.is_connected:
            await self.connect()
        elif check_health:
            await self.check_health()
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            writer = self._writer
            writer.writelines(command)
            if self.socket_timeout and writer.transport.get_write_buffer_size():
                # Not all of it went out at once: waiting for the socket to take the rest is what
                # the timeout bounds. (With an empty buffer drain cannot block.)
                async with asyncio.timeout(self.socket_timeout):
                    await writer.drain()
            else:
                await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            await self.disconnect(nowait=True)
            err_no, errmsg = ("UNKNOWN", e.args[0]) if len(e.args) == 1 else (e.args[0], e.args[1])
            raise RedisConnectionError(f"Error {err_no} while writing to socket. {errmsg}.") from e
        except BaseException:
            # A send cut part-way (cancelled, say) cannot be resumed: do not reuse the connection.
            await self.disconnect(nowait=True)
            raise


class LeanConnection(_LeanSend, Connection):
    pass


class LeanSSLConnection(_LeanSend, SSLConnection):
    pass


class LeanPool(ConnectionPool):
    async def ensure_connection(self, connection: AbstractConnection) -> None:
        if connection.is_connected:
            return
        await super().ensure_connection(connection)


def lean_pool(url: str, **kwargs: Any) -> LeanPool:
    """A LeanPool for ``url`` (``rediss://`` gets the TLS connection class)."""
    lean = LeanSSLConnection if url.startswith("rediss://") else LeanConnection
    pool: LeanPool = LeanPool.from_url(url, connection_class=lean, **kwargs)
    return pool
