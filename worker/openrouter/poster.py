"""How a completion request travels: one POST, the whole response back.

The completion call is the one HTTP request a job makes, so it goes straight through aiohttp's
connection pool (``AiohttpPoster``): httpx on its aiohttp transport spent about as much CPU again
per call building and translating requests (URL merging, cookies, header objects) — measured in
the README's benchmark table. httpx stays the client for everything off the job path (the key
check, catalog sync, webhooks), and ``HttpxPoster`` lets tests and callers plug any httpx
transport (``httpx.MockTransport``) into the same client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx
from yarl import URL


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes


class Poster(Protocol):
    async def post(self, body: bytes, *, timeout: float, connect_timeout: float) -> RawResponse: ...

    async def aclose(self) -> None: ...


class AiohttpPoster:
    """POSTs to one URL over a shared aiohttp pool; no cookies, a pre-parsed URL, fixed headers."""

    def __init__(self, url: str, headers: Mapping[str, str], *, max_connections: int) -> None:
        self._url = URL(url)
        self._headers = dict(headers)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use: aiohttp binds its pool to the running event loop.
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent",),
        )
        return self._session

    async def post(self, body: bytes, *, timeout: float, connect_timeout: float) -> RawResponse:
        session = self._session or self._open()
        limits = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        async with session.post(self._url, data=body, timeout=limits) as response:
            return RawResponse(response.status, response.headers, await response.read())

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxPoster:
    """The same POST through an httpx client (tests' MockTransport, or any custom transport)."""

    def __init__(self, url: str, headers: Mapping[str, str], transport: httpx.AsyncBaseTransport) -> None:
        self._url = url
        self._http = httpx.AsyncClient(headers=dict(headers), transport=transport)

    async def post(self, body: bytes, *, timeout: float, connect_timeout: float) -> RawResponse:
        limits = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        response = await self._http.post(self._url, content=body, timeout=limits)
        return RawResponse(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        await self._http.aclose()


#: Transport failures of either poster, for one ``except`` in the client.
TRANSPORT_ERRORS = (httpx.HTTPError, aiohttp.ClientError, asyncio.TimeoutError, OSError)
