"""AlertSink: logs every alert, POSTs them to the webhook, and never raises into the caller."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from worker.budget import BudgetAlert
from worker.budget.alerts import AlertSink

ALERT = BudgetAlert(
    key="routeq:budget:per-user:user:u-42:2026-11-22",
    name="per-user",
    scope="user:u-42",
    window="2026-11-22",
    threshold=80,
    spent_nano=1_200_000_000,
    limit_nano=1_500_000_000,
    job_id="job-1",
)
URL = "http://127.0.0.1:9/hooks/secret-token"


async def test_logs_and_posts_alerts(caplog: pytest.LogCaptureFixture) -> None:
    received: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = AlertSink(URL, client=client)
        with caplog.at_level(logging.WARNING, logger="routeq.budget"):
            await sink.emit([ALERT])
            await sink.aclose()
    assert len(received) == 1 and str(received[0].url) == URL
    body = json.loads(received[0].content)
    assert body == {
        "alerts": [
            {
                "budget": "per-user",
                "scope": "user:u-42",
                "window": "2026-11-22",
                "threshold": 80,
                "spent_usd": "1.200000000",
                "limit_usd": "1.500000000",
                "job_id": "job-1",
            }
        ]
    }
    assert "per-user" in caplog.text and "80%" in caplog.text


@pytest.mark.parametrize("failure", ["connect", "status"])
async def test_webhook_failures_are_logged_not_raised(failure: str, caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if failure == "connect":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = AlertSink(URL, client=client)
        with caplog.at_level(logging.WARNING, logger="routeq.budget"):
            await sink.emit([ALERT])
            await sink.drain()
    assert "webhook to 127.0.0.1 failed" in caplog.text
    assert "secret-token" not in caplog.text


async def test_without_webhook_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    sink = AlertSink()
    with caplog.at_level(logging.WARNING, logger="routeq.budget"):
        await sink.emit([ALERT])
    await sink.aclose()
    assert caplog.records and caplog.records[0].name == "routeq.budget"
