"""Helpers for the fault and security tests: Redis state probes, raw queue writes, the CLI,
Redis servers behind AUTH/ACL/TLS, and a hostile upstream that echoes the API key back.

Everything here drives real processes from the outside, the way an operator or an attacker
would, so the tests check behaviour rather than internals.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import redis
from redis.asyncio import Redis as AsyncRedis

from producer_client.keys import QUEUES, Keys
from tests.support.procs import REPO, RedisServer, WorkerProcess, base_env

KEYS = Keys()


# -- waiting and probing -------------------------------------------------------------------------


async def wait_until(pred: Callable[[], Awaitable[bool]], timeout: float, what: str,
                     every: float = 0.05) -> float:
    """Seconds it took ``pred`` to hold; TimeoutError naming ``what`` after ``timeout``."""
    t0 = time.monotonic()
    while not await pred():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic() - t0


async def in_progress(r: AsyncRedis) -> int:
    """Jobs some worker has claimed and not finished: a claim moves a job's score to the claim's
    expiry, so they are the queue entries scored after now."""
    now = int(time.time() * 1000)
    return sum([int(await r.zcount(KEYS.queue(q), f"({now}", "+inf")) for q in QUEUES])


async def decisions_by_job(r: AsyncRedis) -> dict[str, list[dict[str, str]]]:
    """Every decision stream entry, grouped by job id (a job that ran twice shows up twice)."""
    out: dict[str, list[dict[str, str]]] = {}
    for _, fields in await r.xrange(KEYS.decisions):
        entry = {k.decode(): v.decode() for k, v in fields.items()}
        out.setdefault(entry["job_id"], []).append(entry)
    return out


async def dump_all_values(r: AsyncRedis) -> bytes:
    """Every key and value in Redis as one blob, for "this secret is stored nowhere" checks."""
    parts: list[bytes] = []
    async for key in r.scan_iter(count=1000):
        parts.append(key)
        kind = (await r.type(key)).decode()
        if kind == "string":
            parts.append(await r.get(key) or b"")
        elif kind == "hash":
            fields = await cast(Awaitable[dict[bytes, bytes]], r.hgetall(key))
            parts.extend(x for kv in fields.items() for x in kv)
        elif kind == "list":
            parts.extend(await cast(Awaitable[list[bytes]], r.lrange(key, 0, -1)))
        elif kind == "zset":
            parts.extend(m for m, _ in await r.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            for _, fields in await r.xrange(key):
                parts.extend(x for kv in fields.items() for x in kv)
        elif kind == "set":
            parts.extend(await cast(Awaitable[set[bytes]], r.smembers(key)))
    return b"\n".join(parts)


async def hash_ints(r: AsyncRedis, key: str, *fields: str) -> list[int]:
    """Integer hash fields (budget counters), 0 where absent."""
    raw = await cast(Awaitable[list[bytes | None]], r.hmget(key, list(fields)))
    return [0 if v is None else int(v) for v in raw]


async def enqueue_raw(r: AsyncRedis, job_id: str, data: bytes, queue: str = "interactive") -> None:
    """Put arbitrary bytes in the queue as a job, as anyone with Redis access could."""
    qkey = KEYS.queue(queue)
    await r.set(KEYS.job(job_id), data, px=3_600_000)
    await r.zadd(qkey, {job_id: int(time.time() * 1000)})
    await r.publish(KEYS.wake(qkey), 1)


def enqueue_raw_sync(r: redis.Redis, job_id: str, data: bytes, queue: str = "interactive") -> None:
    qkey = KEYS.queue(queue)
    r.set(KEYS.job(job_id), data, px=3_600_000)
    r.zadd(qkey, {job_id: int(time.time() * 1000)})
    r.publish(KEYS.wake(qkey), 1)


# -- processes -------------------------------------------------------------------------------------


def start_workers(n: int, redis_url: str, base_url: str, **settings: str) -> list[WorkerProcess]:
    """``n`` worker processes started in parallel (each takes about a second to come up)."""
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: WorkerProcess(redis_url, base_url, **settings), range(n)))


def routeq(redis_url: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The ``routeq`` CLI as an operator runs it, against ``redis_url``."""
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args, "--redis", redis_url],
                          cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=timeout)


# -- Redis behind AUTH, ACL users and TLS --------------------------------------------------------------


class AuthRedisServer(RedisServer):
    """redis-server requiring a password (``requirepass``), or an ACL user with the default user off.

    The ACL user gets every key and channel and every command except ``@dangerous`` ones
    (FLUSHALL, CONFIG, KEYS, DEBUG …): what an operator would grant an application.
    """

    def __init__(self, password: str, user: str | None = None) -> None:
        if user is None:
            extra = ["--requirepass", password]
        else:
            extra = ["--user", user, "on", f">{password}", "~*", "&*", "+@all", "-@dangerous",
                     "--user", "default", "off"]
        super().__init__(appendonly=False, extra=extra)
        self.user = user
        self.password = password

    def url_with(self, password: str) -> str:
        return f"redis://{self.user or ''}:{password}@127.0.0.1:{self.port}/0"

    @property
    def url(self) -> str:
        return self.url_with(self.password)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, username=self.user, password=self.password, socket_timeout=5)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(where: Path, name: str = "ca") -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (openssl CLI)."""
    where.mkdir(parents=True, exist_ok=True)
    ca, ca_key = where / f"{name}.crt", where / f"{name}.key"
    cert, key, csr = where / "server.crt", where / "server.key", where / "server.csr"
    ext = where / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "1", "-subj", f"/CN=routeq-test-{name}")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return TlsFiles(ca, cert, key)


def tls_unavailable() -> str | None:
    """Why a TLS test cannot run here, or None."""
    if shutil.which("openssl") is None:
        return "openssl is not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


class TlsRedisServer(RedisServer):
    """redis-server listening on TLS only (``--port 0``); clients need no certificate."""

    def __init__(self, files: TlsFiles) -> None:
        super().__init__(appendonly=False, extra=[
            "--port", "0", "--tls-port", "", "--tls-cert-file", str(files.cert),
            "--tls-key-file", str(files.key), "--tls-ca-cert-file", str(files.ca),
            "--tls-auth-clients", "no",
        ])
        self.extra[3] = str(self.port)  # the TLS port takes the free port; plain TCP is off
        self.files = files

    def url_with_ca(self, ca: Path) -> str:
        return f"rediss://127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}&ssl_check_hostname=true"

    @property
    def url(self) -> str:
        return self.url_with_ca(self.files.ca)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, ssl=True, ssl_ca_certs=str(self.files.ca),
                           ssl_cert_reqs="required", socket_timeout=5)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.RedisError, ssl.SSLError, OSError):
            return False

    def log_tail(self) -> str:
        path = Path(self.dir) / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


# -- a hostile upstream ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted upstream answer; ``{key}`` in ``body`` becomes the bearer token received."""

    status: int
    body: str
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


class EchoUpstream:
    """An OpenRouter stand-in that answers the scripted replies in order, echoing the caller's key.

    A misbehaving proxy or provider that reflects the Authorization header into error bodies is
    the easiest way for a key to reach logs and results; the worker must redact it everywhere.
    """

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.count = 0
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                """``GET /key``, which a worker asks once at start-up: any key is fine here."""
                body = json.dumps({"data": {"label": "sk-or-v1-...", "usage": 0, "limit": None}}).encode()
                self.send_response(200 if self.path.endswith("/key") else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                key = self.headers.get("authorization", "").removeprefix("Bearer ").strip()
                with upstream._lock:
                    reply = upstream.replies[min(upstream.count, len(upstream.replies) - 1)]
                    upstream.count += 1
                time.sleep(reply.delay_s)
                body = reply.body.replace("{key}", key).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    for name, value in reply.headers:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker gave up on this attempt (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def error_body(code: int, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


def finish_error_body(message: str) -> str:
    return json.dumps({
        "id": "gen-echo", "object": "chat.completion", "model": "openai/gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "error",
                     "message": {"role": "assistant", "content": ""},
                     "error": {"code": 502, "message": message}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1, "cost": 0},
    })
