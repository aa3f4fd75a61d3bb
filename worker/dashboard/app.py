"""The dashboard's web server: one page, its static files, and the JSON it refreshes from.

Read-only by construction (only GET routes, and :class:`~worker.dashboard.data.DashboardData`
only reads). With a token, the page and the data need it, as ``Authorization: Bearer T`` or, so a
browser can open the page, ``?token=T``; the static files (the chart library, the page's script)
hold no data and are served to anyone. A strict Content-Security-Policy keeps the page to its
own files: nothing is loaded from a CDN, so it works behind firewalls.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Final

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from worker.dashboard.data import DashboardData

log = logging.getLogger("routeq.dashboard")

STATIC: Final = {
    "uPlot.iife.min.js": "application/javascript",
    "uPlot.min.css": "text/css",
    "uPlot.LICENSE": "text/plain",
    "dashboard.js": "application/javascript",
    "errors.js": "application/javascript",
    "dashboard.css": "text/css",
}
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _file(name: str) -> bytes:
    return resources.files("worker.dashboard").joinpath("static", name).read_bytes()


def make_app(data: DashboardData, *, token: str | None = None) -> web.Application:
    app = web.Application(middlewares=[_headers])
    files = {name: _file(name) for name in STATIC}
    page = _file("index.html")

    async def index(request: web.Request) -> web.Response:
        _authorize(request, token)
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type=STATIC[name])

    failing = False

    async def api(request: web.Request) -> web.Response:
        nonlocal failing
        _authorize(request, token)
        try:
            doc = await data.snapshot()
        except (RedisError, OSError) as exc:  # the page says so and keeps its last picture
            if not failing:
                log.warning("dashboard: cannot read Redis: %s", exc)
            failing = True
            return web.json_response({"error": f"cannot read Redis: {exc}"}, status=503)
        if failing:
            log.warning("dashboard: Redis readable again")
        failing = False
        body = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
        return web.Response(body=body, content_type="application/json")

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/data", api)
    return app


def _authorize(request: web.Request, token: str | None) -> None:
    if token is None:
        return
    given = request.query.get("token", "")
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        given = header.removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise web.HTTPUnauthorized(text="a token is required: open the page with ?token=...",
                                   headers={"WWW-Authenticate": 'Bearer realm="routeq dashboard"'})


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(HEADERS)
        raise
    response.headers.update(HEADERS)
    return response

