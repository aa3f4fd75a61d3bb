"""Refuse to start a worker whose key or base URL cannot work.

A worker without a key (or with a base URL missing ``/api/v1``) used to start silently; its first
401 then blocked the account for every worker. ``GET {base}/key`` answers both questions before
the worker takes a job: 200 is a usable key, 401 a refused one, 404 (or not JSON) a URL that is
not OpenRouter's API. A network failure is retried a few times first: OpenRouter being briefly
unreachable at start is not a configuration error.
"""

from __future__ import annotations

import asyncio

import httpx

from worker.openrouter.errors import redact
from worker.openrouter.settings import OpenRouterSettings


class KeyCheckFailed(RuntimeError):
    """The key or the URL cannot work; the message names the setting to fix."""


async def check_key(
    settings: OpenRouterSettings, *, attempts: int = 3, transport: httpx.AsyncBaseTransport | None = None
) -> None:
    if not settings.api_key:
        raise KeyCheckFailed("OPENROUTER_API_KEY is not set: workers need a key to call OpenRouter")
    base = settings.base_url
    headers = settings.headers()
    last = ""
    async with httpx.AsyncClient(timeout=settings.connect_timeout_s + 5, transport=transport) as http:
        for attempt in range(attempts):
            try:
                response = await http.get(settings.key_url, headers=headers)
            except httpx.HTTPError as exc:
                last = redact(f"{type(exc).__name__}: {exc}", settings.api_key)
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            if response.status_code == 401:
                raise KeyCheckFailed(f"OPENROUTER_API_KEY was refused by {base} (HTTP 401): check the key")
            if response.status_code == 404 or not _is_json(response):
                raise KeyCheckFailed(
                    f"OPENROUTER_BASE_URL={base!r} does not look like OpenRouter's API "
                    f"(GET /key answered HTTP {response.status_code}); it should end in /api/v1"
                )
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            if response.status_code != 200:
                raise KeyCheckFailed(f"GET {base}/key answered HTTP {response.status_code}")
            return
    raise KeyCheckFailed(f"cannot reach OPENROUTER_BASE_URL={base!r} ({last}) after {attempts} tries")


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip() == "application/json"
