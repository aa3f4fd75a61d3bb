"""Delivering budget threshold alerts beyond the Redis stream: the log and an optional webhook.

The ledger decides *when* a threshold is crossed (once per window, inside its Lua scripts, which
also XADD to ``{prefix}budget:alerts``). This sink only tells people, best effort: it never
raises into the job that caused the alert, and webhook POSTs run in the background with a short
timeout so a slow receiver never delays a job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from worker.budget.records import BudgetAlert

logger = logging.getLogger("routeq.budget")


class AlertSink:
    """``await sink.emit(alerts)`` logs each alert and POSTs ``{"alerts": [...]}`` to the webhook.

    Pass ``sink.emit`` as the ledger's ``on_alerts``; call :meth:`aclose` on shutdown to let
    pending POSTs finish.
    """

    def __init__(
        self,
        webhook_url: str | None = None,
        *,
        timeout_s: float = 2.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self._client = client
        self._owns_client = client is None
        self._pending: set[asyncio.Task[None]] = set()

    async def emit(self, alerts: Sequence[BudgetAlert]) -> None:
        for alert in alerts:
            logger.warning(
                "budget %s %s %s reached %d%%: spent %s of %s USD",
                alert.name,
                alert.scope,
                alert.window,
                alert.threshold,
                alert.as_dict()["spent_usd"],
                alert.as_dict()["limit_usd"],
            )
        if self.webhook_url and alerts:
            task = asyncio.create_task(self._post(self.webhook_url, list(alerts)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the webhook POSTs in flight."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _post(self, url: str, alerts: list[BudgetAlert]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient()
        try:
            response = await self._client.post(
                url, json={"alerts": [a.as_dict() for a in alerts]}, timeout=self.timeout_s
            )
            response.raise_for_status()
        except Exception as exc:  # best effort: an alert must never fail a job
            # Webhook URLs often embed a token: name the host only.
            host = urlsplit(url).hostname
            logger.warning("budget alert webhook to %s failed: %s", host, type(exc).__name__)
