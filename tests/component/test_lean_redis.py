"""The lean connection pool (producer_client/lean_redis.py) on a real redis-server: same answers,
and a connection cut mid-command is never handed out again with a stale reply in it."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from producer_client.connection import connect
from producer_client.lean_redis import LeanConnection, LeanPool
from tests.support.procs import RedisServer


async def test_commands_pipelines_and_scripts_work(redis_server: RedisServer) -> None:
    r = connect(redis_server.url)
    try:
        assert isinstance(r.connection_pool, LeanPool)
        await r.set("k", "v")
        assert await r.get("k") == b"v"
        async with r.pipeline(transaction=True) as tx:
            tx.incr("n")
            tx.incr("n")
            assert await tx.execute() == [1, 2]
        assert await r.register_script("return ARGV[1]")(args=["x"]) == b"x"
        conn = await r.connection_pool.get_connection()
        assert isinstance(conn, LeanConnection)
        await r.connection_pool.release(conn)
    finally:
        await r.aclose()


async def test_a_command_cut_mid_reply_leaves_no_stale_reply_behind(redis_server: RedisServer) -> None:
    r = connect(redis_server.url, max_connections=1)  # one connection: the cut one must be reused
    try:
        await r.delete("list")
        for _ in range(20):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await r.blpop(["list"], timeout=1)  # type: ignore[arg-type]
            await r.rpush("list", "late")  # the cut BLPOP must not pop (or answer) this one
            assert await r.lpop("list") == b"late"
            assert await r.get("missing") is None
    finally:
        await r.aclose()


async def test_closing_the_client_closes_its_pool(redis_server: RedisServer) -> None:
    r = connect(redis_server.url)
    await r.ping()
    pool = r.connection_pool
    await r.aclose()
    assert all(not c.is_connected for c in pool._available_connections)  # type: ignore[attr-defined]


async def test_a_send_the_server_stops_taking_times_out(redis_server: RedisServer) -> None:
    """A frozen Redis fills the socket buffers; the send is then bounded by ``socket_timeout``."""
    r = connect(redis_server.url, socket_timeout_s=0.5)
    assert redis_server.proc is not None
    try:
        await r.ping()
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(RedisTimeoutError):
                await r.set("big", b"x" * (64 << 20))  # far more than the kernel's socket buffers
            assert time.monotonic() - t0 < 10
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        assert await r.ping()  # the cut connection was dropped; a fresh one works
    finally:
        await r.aclose()
