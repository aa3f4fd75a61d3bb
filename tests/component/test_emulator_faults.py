"""Injected faults and OpenRouter's native `models` fallback, driven by deterministic scripts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from worker.emulator import FaultConfig, FaultConfigError, RunningEmulator
from worker.emulator.faults import FaultInjector, FaultKind

AUTH = {"Authorization": "Bearer sk-or-v1-test"}
GPT4O, SONNET, MINI = "openai/gpt-4o", "anthropic/claude-3.5-sonnet", "openai/gpt-4o-mini"


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emu.base_url, headers=AUTH, timeout=10) as client:
        yield client


async def ask(
    http: httpx.AsyncClient, model: str, models: list[str] | None = None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}
    if models is not None:
        body["models"] = models
    return await http.post("/chat/completions", json=body)


async def test_fallback_serves_the_next_model_after_scripted_faults(
    emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    emu.set_faults({"script": {GPT4O: ["502", "ok"], SONNET: ["429"]}})
    resp = await ask(http, GPT4O, [SONNET, MINI])
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["model"] == MINI and doc["provider"] == "OpenAI"
    assert "error" not in doc  # OpenRouter does not report earlier failures on a success
    assert "retry-after" not in resp.headers
    again = await ask(http, GPT4O, [SONNET, MINI])  # gpt-4o's script now says "ok"
    assert again.json()["model"] == GPT4O
    stats = emu.stats()
    assert stats["attempts"] == {GPT4O: 2, SONNET: 1, MINI: 1}
    assert stats["by_model"][GPT4O] == {"error_5xx": 1, "ok": 1}
    recent = stats["recent"][0]
    assert recent["served_model"] == MINI and recent["models"] == [SONNET, MINI]
    assert [a["status"] for a in recent["attempts"]] == [502, 429, 200]


async def test_all_failing_returns_the_last_error_with_previous_errors(
    emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    emu.set_faults({"script": {GPT4O: ["429"], SONNET: ["503"]}})
    resp = await ask(http, GPT4O, [SONNET])
    assert resp.status_code == 503
    assert "retry-after" not in resp.headers  # the 429 was not the last error
    error = resp.json()["error"]
    assert error["code"] == 503 and error["metadata"]["error_type"] == "provider_overloaded"
    assert error["metadata"]["previous_errors"] == [
        {"model": GPT4O, "provider": "openai", "code": "rate_limit_exceeded", "status": 429},
        {"model": SONNET, "provider": "anthropic", "code": "provider_overloaded", "status": 503},
    ]


async def test_final_429_carries_retry_after(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    emu.set_faults(
        {"models": {SONNET: {"retry_after_s": 7}}, "script": {GPT4O: ["502"], SONNET: ["rate_limit"]}}
    )
    resp = await ask(http, GPT4O, [SONNET])
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"
    error = resp.json()["error"]
    assert error["message"] == "Provider returned error"
    assert "is temporarily rate-limited upstream" in error["metadata"]["raw"]
    assert error["metadata"]["provider_name"] == "Anthropic"


async def test_502_body_matches_the_reference(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    emu.set_faults({"fail_always": [GPT4O]})
    for _ in range(3):
        resp = await ask(http, GPT4O)
        error = resp.json()["error"]
        assert resp.status_code == 502 == error["code"]
        assert error["message"] == "Provider returned error"
        assert error["metadata"]["provider_name"] == "OpenAI" and "raw" in error["metadata"]
    assert (await ask(http, MINI)).status_code == 200


async def test_http_200_with_error_body(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    emu.set_faults({"script": {MINI: ["error_200"]}})
    resp = await ask(http, MINI)
    assert resp.status_code == 200
    doc = resp.json()
    assert "choices" not in doc
    assert doc["error"]["code"] == 502 and doc["error"]["message"] == "Provider returned error"


async def test_finish_reason_error_is_partial_and_free(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    emu.set_faults({"script": {SONNET: ["finish_error"]}})
    prompt = "tell me a long story about queues and budgets and routers"
    resp = await http.post(
        "/chat/completions", json={"model": SONNET, "messages": [{"role": "user", "content": prompt}]}
    )
    assert resp.status_code == 200
    doc = resp.json()
    (choice,) = doc["choices"]
    assert choice["finish_reason"] == "error"
    assert choice["error"]["code"] == 502
    content = choice["message"]["content"]
    assert (
        content and f"[{SONNET}] {prompt}".startswith(content) and len(content) < len(f"[{SONNET}] {prompt}")
    )
    assert doc["usage"]["cost"] == 0
    key = (await http.get("/key")).json()["data"]
    assert key["usage"] == 0  # zero-completion insurance: nothing charged


async def test_timeout_holds_then_408(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    emu.set_faults({"models": {"*": {"timeout_s": 0.3}}, "script": {MINI: ["timeout"]}})
    started = time.monotonic()
    resp = await ask(http, MINI)
    assert time.monotonic() - started >= 0.3
    assert resp.status_code == 408
    assert resp.json()["error"]["message"] == "Operation timed out. Please try again later."


async def test_latency_applies_per_attempt(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    emu.set_faults(
        {"models": {"*": {"latency_ms": 400}, MINI: {"latency_ms": 0}}, "script": {GPT4O: ["500"]}}
    )
    assert (await ask(http, MINI)).status_code == 200
    started = time.monotonic()
    resp = await ask(http, GPT4O, [SONNET])
    assert resp.status_code == 200 and resp.json()["model"] == SONNET
    assert time.monotonic() - started >= 0.8  # two attempts of 400 ms each
    # The emulator's own handling time (no client or loop overhead): the per-model 0 overrides
    # the default, which a busy machine can only lengthen, not shorten; 400 ms of margin for it.
    fast, slow = (r["latency_ms"] for r in emu.stats()["recent"])
    assert fast < 400 and slow >= 800


async def test_probabilities_are_seeded(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    faults = {
        "seed": 11,
        "models": {"*": {"error_5xx": 0.4, "rate_limit": 0.2, "error_5xx_statuses": [502, 504]}},
    }
    emu.set_faults(faults)
    first = [(await ask(http, MINI)).status_code for _ in range(40)]
    emu.reset()
    second = [(await ask(http, MINI)).status_code for _ in range(40)]
    assert first == second
    assert set(first) == {200, 429, 502, 504}
    assert 8 <= first.count(200) <= 30


def test_injector_distribution_and_script_order() -> None:
    config = FaultConfig.from_dict(
        {
            "seed": 3,
            "models": {"*": {"error_5xx": 0.25, "finish_error": 0.25}},
            "script": {"a/b": [503, "error_5xx", "ok"]},
        }
    )
    injector = FaultInjector(config)
    assert [injector.decide("a/b").status for _ in range(2)] == [503, 500]
    assert injector.decide("a/b").kind is FaultKind.OK
    kinds = [injector.decide("x/y").kind for _ in range(4000)]
    assert 800 < kinds.count(FaultKind.ERROR_5XX) < 1200
    assert 800 < kinds.count(FaultKind.FINISH_ERROR) < 1200
    assert 1800 < kinds.count(FaultKind.OK) < 2200


@pytest.mark.parametrize(
    "doc",
    [
        {"models": {"*": {"error_5xx": 1.5}}},
        {"models": {"*": {"error_5xx": 0.6, "rate_limit": 0.6}}},
        {"models": {"*": {"latncy_ms": 5}}},
        {"models": {"*": {"error_5xx_statuses": [404]}}},
        {"script": {"a/b": ["418"]}},
        {"fail_always": "a/b"},
        {"seed": "x"},
        {"unknown": 1},
    ],
)
def test_invalid_fault_documents_are_rejected(doc: dict[str, Any]) -> None:
    with pytest.raises(FaultConfigError):
        FaultConfig.from_dict(doc)


def test_fault_document_round_trips_and_flags_override_defaults() -> None:
    doc = {
        "seed": 5,
        "models": {"*": {"latency_ms": 10}, GPT4O: {"rate_limit": 0.5}},
        "script": {GPT4O: ["502", "ok"]},
        "fail_always": [SONNET],
    }
    config = FaultConfig.from_dict(doc)
    assert FaultConfig.from_dict(config.to_dict()) == config
    assert config.profile(GPT4O).latency_ms == 10 and config.profile(GPT4O).rate_limit == 0.5
    changed = config.with_defaults(latency_ms=250, error_5xx=0.1)
    assert changed.profile(GPT4O).latency_ms == 250  # per-model keys inherit the new default
    assert changed.profile(MINI).error_5xx == 0.1
    assert changed.profile(GPT4O).rate_limit == 0.5


async def test_control_endpoints(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    control = f"http://127.0.0.1:{emu.port}/_emulator"
    async with httpx.AsyncClient(timeout=5) as plain:
        bad = await plain.put(f"{control}/faults", json={"models": {"*": {"error_5xx": 2}}})
        assert bad.status_code == 400
        ok = await plain.put(f"{control}/faults", json={"script": {MINI: ["502"]}})
        assert ok.status_code == 200 and ok.json()["script"] == {MINI: ["502"]}
        assert (await plain.get(f"{control}/faults")).json()["script"] == {MINI: ["502"]}

        headers = {"HTTP-Referer": "https://routeq.example", "X-Title": "routeq-tests"}
        assert (
            await http.post(
                "/chat/completions",
                headers=headers,
                json={
                    "model": MINI,
                    "models": [GPT4O],
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
        ).status_code == 200
        stats = (await plain.get(f"{control}/stats")).json()
        assert stats["requests_total"] == 1 and stats["responses"] == {"200": 1}
        assert stats["outcomes"] == {"error_5xx": 1, "ok": 1}
        (record,) = stats["recent"]
        assert record["http_referer"] == "https://routeq.example" and record["x_title"] == "routeq-tests"
        assert record["max_tokens"] == 64 and record["provider"] == "OpenAI"
        assert "sk-or-v1-test" not in str(stats) and "authorization" not in str(stats).lower()

        assert (await plain.post(f"{control}/reset")).status_code == 200
        stats = (await plain.get(f"{control}/stats")).json()
        assert stats["requests_total"] == 0 and stats["recent"] == []
        assert (await http.get("/key")).json()["data"]["usage"] == 0
        rewound = await ask(http, MINI)  # reset rewinds the script: the 502 comes back
        assert rewound.status_code == 502


async def test_usage_is_charged_only_for_the_served_model(
    emu: RunningEmulator, http: httpx.AsyncClient
) -> None:
    emu.set_faults({"script": {GPT4O: ["502"]}})
    resp = await ask(http, GPT4O, [MINI])
    cost = Decimal(str(resp.json()["usage"]["cost"]))
    key = (await http.get("/key")).json()["data"]
    assert Decimal(str(key["usage"])) == cost > 0
