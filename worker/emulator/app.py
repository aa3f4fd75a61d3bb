"""Routes of the emulator: OpenRouter's paths under ``/api/v1`` and control paths under ``/_emulator``.

Control endpoints (no auth; loopback only) let tests change faults without a restart:
``GET|PUT /_emulator/faults`` (the document of :mod:`worker.emulator.faults`),
``GET|PUT /_emulator/models`` (what ``/api/v1/models`` serves: :mod:`worker.emulator.models_faults`),
``GET /_emulator/stats``, ``POST /_emulator/reset`` (stats, usage, scripts, seed and the models
body) and ``GET /_emulator/health``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from worker.catalog import Catalog
from worker.emulator.account import Account
from worker.emulator.completions import CompletionHandler
from worker.emulator.errors import ApiError, Rejected, bad_request
from worker.emulator.faults import FaultConfig, FaultConfigError, FaultInjector
from worker.emulator.http import Request, Response
from worker.emulator.models_faults import ModelsConfig, ModelsConfigError, models_response
from worker.emulator.request import parse_json
from worker.emulator.stats import Stats
from worker.emulator.wire import json_response

API_PREFIX = "/api/v1"
CONTROL_PREFIX = "/_emulator"

_Route = Callable[[Request], Awaitable[Response]]


class EmulatorApp:
    """The request handler given to :class:`worker.emulator.http.HttpServer`."""

    def __init__(
        self,
        catalog: Catalog,
        faults: FaultConfig | None = None,
        *,
        api_key: str | Sequence[str] | None = None,
        credit_limit: Decimal | None = None,
        recent_limit: int = 200,
    ) -> None:
        self.catalog = catalog
        self.faults = FaultInjector(faults)
        self.account = Account(api_key, credit_limit)
        self.stats = Stats(recent_limit)
        self.models_config = ModelsConfig()
        self.models_served = 0  # GET /api/v1/models answered since the last reset
        completions = CompletionHandler(catalog, self.faults, self.account, self.stats)
        self._routes: dict[tuple[str, str], _Route] = {
            ("POST", f"{API_PREFIX}/chat/completions"): completions,
            ("GET", f"{API_PREFIX}/models"): self._models,
            ("GET", f"{API_PREFIX}/key"): self._key,
            ("GET", f"{API_PREFIX}/auth/key"): self._key,
            ("GET", f"{CONTROL_PREFIX}/faults"): self._get_faults,
            ("PUT", f"{CONTROL_PREFIX}/faults"): self._put_faults,
            ("GET", f"{CONTROL_PREFIX}/models"): self._get_models_config,
            ("PUT", f"{CONTROL_PREFIX}/models"): self._put_models_config,
            ("GET", f"{CONTROL_PREFIX}/stats"): self._stats,
            ("POST", f"{CONTROL_PREFIX}/reset"): self._reset,
            ("PUT", f"{CONTROL_PREFIX}/account"): self._put_account,
            ("GET", f"{CONTROL_PREFIX}/health"): self._health,
        }
        self._paths = {path for _, path in self._routes}

    async def __call__(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        route = self._routes.get((request.method, path))
        if route is not None:
            return await route(request)
        if path in self._paths:
            return ApiError(405, f"Method {request.method} not allowed on {path}").response()
        return ApiError(404, "Not Found", {"error_type": "not_found"}).response()

    def set_faults(self, config: FaultConfig) -> None:
        self.faults.configure(config)

    def reset(self) -> None:
        self.stats.reset()
        self.account.reset()
        self.faults.rewind()
        self.models_config = ModelsConfig()
        self.models_served = 0

    async def _models(self, request: Request) -> Response:
        self.models_served += 1
        if self.models_config.mode == "normal":
            return json_response(200, self.models_document())
        return models_response(self.models_config, list(self.catalog.document.get("data", [])))

    def models_document(self) -> dict[str, Any]:
        data = list(self.catalog.document.get("data", []))
        return {"data": data, "total_count": len(data), "links": {"next": None}}

    async def _key(self, request: Request) -> Response:
        try:
            key = self.account.authenticate(request.headers)
        except Rejected as exc:
            return exc.error.response()
        return json_response(200, self.account.key_info(key))

    async def _get_faults(self, request: Request) -> Response:
        return json_response(200, self.faults.config.to_dict())

    async def _put_faults(self, request: Request) -> Response:
        try:
            config = FaultConfig.from_dict(parse_json(request.body))
        except Rejected as exc:
            return exc.error.response()
        except FaultConfigError as exc:
            return bad_request(str(exc)).response()
        self.set_faults(config)
        return json_response(200, config.to_dict())

    async def _get_models_config(self, request: Request) -> Response:
        return json_response(200, {"config": self.models_config.to_dict(), "served": self.models_served})

    async def _put_models_config(self, request: Request) -> Response:
        try:
            config = ModelsConfig.from_dict(parse_json(request.body))
        except Rejected as exc:
            return exc.error.response()
        except ModelsConfigError as exc:
            return bad_request(str(exc)).response()
        self.models_config = config
        return json_response(200, config.to_dict())

    async def _put_account(self, request: Request) -> Response:
        """``{"api_keys": [...]}``: the keys accepted from now on (an empty list accepts any)."""
        try:
            doc = parse_json(request.body)
        except Rejected as exc:
            return exc.error.response()
        keys = doc.get("api_keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            return bad_request('expected {"api_keys": ["...", ...]}').response()
        self.account.set_keys(keys)
        return json_response(200, {"ok": True, "keys": len(keys)})

    def snapshot(self) -> dict[str, Any]:
        """The stats, plus ``billed_usd``: every cost served since start or reset, as the account
        keeps it (an exact decimal string), so tests can hold the worker's charges against it."""
        return {**self.stats.snapshot(), "billed_usd": str(self.account.usage)}

    async def _stats(self, request: Request) -> Response:
        return json_response(200, self.snapshot())

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return json_response(200, {"ok": True})

    async def _health(self, request: Request) -> Response:
        return json_response(200, {"ok": True})
