"""A minimal asyncio HTTP/1.1 server on h11: keep-alive, Content-Length bodies, nothing more.

The emulator must hold thousands of slow, concurrent requests on loopback, with no web
framework dependency; one task per connection and h11 for the protocol state are enough.
Request headers are never logged (they carry the API key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate

import h11

log = logging.getLogger(__name__)

_READ_CHUNK = 65536
_SERVER_NAME = b"routeq-emulator"


@dataclass(frozen=True, slots=True)
class Request:
    """One complete request; header names are lower-case, repeated headers joined by ", "."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


Handler = Callable[[Request], Awaitable[Response]]


class _BodyTooLarge(Exception):
    pass


class HttpServer:
    """Serves ``handler`` on one listening socket until :meth:`close`."""

    def __init__(self, handler: Handler, *, max_body_bytes: int = 8 * 1024 * 1024) -> None:
        self._handler = handler
        self._max_body = max_body_bytes
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._date = (0, b"")

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str, port: int) -> None:
        # A large backlog lets thousands of clients connect at once without SYN retries.
        self._server = await asyncio.start_server(
            self._connection, host, port, backlog=4096, reuse_address=True
        )

    async def close(self) -> None:
        """Stop listening and drop every open connection (in-flight requests are cancelled)."""
        if self._server is None:
            return
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                try:
                    request = await self._receive(conn, reader, writer)
                except h11.RemoteProtocolError as exc:
                    self._reply_and_close(conn, writer, exc.error_status_hint, b"bad request")
                    return
                except _BodyTooLarge:
                    self._reply_and_close(conn, writer, 413, b"payload too large")
                    return
                if request is None:
                    return
                try:
                    response = await self._handler(request)
                except Exception:
                    log.exception("handler failed for %s %s", request.method, request.path)
                    response = Response(500, b'{"error":{"code":500,"message":"Internal Server Error"}}')
                writer.write(self._encode(conn, response))
                await writer.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.LocalProtocolError):
            pass
        except asyncio.CancelledError:
            # Only close() cancels these tasks; asyncio.streams would log a re-raised
            # cancellation as an error, so the task ends quietly instead.
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _receive(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
                conn.receive_data(await reader.read(_READ_CHUNK))
            elif isinstance(event, h11.Request):
                head = event
                declared = dict(event.headers).get(b"content-length", b"0")
                if int(declared) > self._max_body:
                    raise _BodyTooLarge
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self._max_body:
                    raise _BodyTooLarge
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return _build_request(head, bytes(body))
            else:  # ConnectionClosed or PAUSED: the peer is done with this connection
                return None

    def _encode(self, conn: h11.Connection, response: Response) -> bytes:
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            (b"date", self._http_date()),
            (b"server", _SERVER_NAME),
        ]
        headers.extend((k.encode(), v.encode()) for k, v in response.headers)
        out = conn.send(h11.Response(status_code=response.status, headers=headers))
        if response.body:
            out += conn.send(h11.Data(data=response.body))
        out += conn.send(h11.EndOfMessage())
        return bytes(out)

    def _reply_and_close(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, text: bytes
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with contextlib.suppress(h11.LocalProtocolError):
            writer.write(self._encode(conn, Response(status, text, content_type="text/plain")))

    def _http_date(self) -> bytes:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True).encode())
        return self._date[1]


def _build_request(head: h11.Request, body: bytes) -> Request:
    headers: dict[str, str] = {}
    for raw_name, raw_value in head.headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    target = head.target.decode("latin-1")
    path, _, query = target.partition("?")
    return Request(head.method.decode("ascii"), path, query, headers, body)
