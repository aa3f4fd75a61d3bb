"""The emulator's OpenRouter surface: shapes, exact costs, auth, validation, capabilities."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from worker.catalog import Catalog
from worker.emulator import RunningEmulator, serve_emulator
from worker.emulator.content import LABELS

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
MILLION = Decimal(1_000_000)


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emu.base_url, headers=AUTH, timeout=10) as client:
        yield client


def decimal_json(resp: httpx.Response) -> Any:
    """Parse numbers as Decimal, as a careful client does with usage.cost."""
    return json.loads(resp.text, parse_float=Decimal)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def complete(http: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await http.post("/chat/completions", json=body)


async def test_success_body_has_openrouter_shape(http: httpx.AsyncClient) -> None:
    resp = await complete(http, model="openai/gpt-4o-mini", messages=user("Hello there, emulator"))
    assert resp.status_code == 200
    doc = resp.json()
    assert re.fullmatch(r"gen-\d{10}-[A-Za-z0-9]{20}", doc["id"])
    assert resp.headers["x-generation-id"] == doc["id"]
    assert doc["provider"] == "OpenAI"
    assert doc["model"] == "openai/gpt-4o-mini"
    assert doc["object"] == "chat.completion"
    assert isinstance(doc["created"], int)
    assert doc["system_fingerprint"].startswith("fp_")
    (choice,) = doc["choices"]
    assert choice["finish_reason"] == "stop" and choice["native_finish_reason"] == "stop"
    assert choice["logprobs"] is None and choice["index"] == 0
    assert choice["message"] == {
        "role": "assistant",
        "content": "[openai/gpt-4o-mini] Hello there, emulator",
        "refusal": None,
        "reasoning": None,
    }
    usage = doc["usage"]
    assert usage["is_byok"] is False
    assert usage["cost_details"]["upstream_inference_cost"] is None
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    assert "x_routeq_previous_errors" not in doc and "error" not in doc


async def test_cost_is_exact_from_catalog_prices(http: httpx.AsyncClient) -> None:
    text = "Summarise the following paragraph about routing rules, budgets and fallbacks. " * 7
    messages = [{"role": "system", "content": "You are terse."}, *user(text)]
    resp = await complete(http, model="anthropic/claude-3.5-sonnet", messages=messages, max_tokens=500)
    usage = decimal_json(resp)["usage"]
    chars = len("You are terse.") + len(text)
    assert usage["prompt_tokens"] == math.ceil(chars / 4) + 4 * 2
    prompt_cost = usage["prompt_tokens"] * Decimal(3) / MILLION
    completion_cost = usage["completion_tokens"] * Decimal(15) / MILLION
    assert usage["cost"] == prompt_cost + completion_cost
    details = usage["cost_details"]
    assert details["upstream_inference_prompt_cost"] == prompt_cost
    assert details["upstream_inference_completions_cost"] == completion_cost
    assert usage["cost"] > 0


async def test_key_usage_accumulates_served_costs(http: httpx.AsyncClient) -> None:
    costs = []
    for model in ("openai/gpt-4o", "openai/o1", "google/gemma-2-9b-it:free"):
        resp = await complete(http, model=model, messages=user(f"hello {model}"))
        costs.append(decimal_json(resp)["usage"]["cost"])
    assert costs[2] == 0
    for path in ("/key", "/auth/key"):
        data = decimal_json(await http.get(path))["data"]
        assert data["usage"] == sum(costs)
        assert data["limit"] is None and data["limit_remaining"] is None
        assert data["label"].startswith("sk-or-v1-") and KEY not in data["label"]


async def test_models_endpoint_serves_the_catalog(emu: RunningEmulator) -> None:
    async with httpx.AsyncClient(base_url=emu.base_url) as anonymous:
        doc = (await anonymous.get("/models")).json()
    assert Catalog.from_models_json(doc).ids() == Catalog.load().ids()
    assert doc["total_count"] == len(doc["data"])


async def test_auth_errors(emu: RunningEmulator, http: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=emu.base_url) as anonymous:
        resp = await anonymous.post(
            "/chat/completions", json={"model": "openai/gpt-4o", "messages": user("x")}
        )
        assert resp.status_code == 401
        assert resp.json()["error"] == {"code": 401, "message": "No auth credentials found"}
        assert (await anonymous.get("/key")).status_code == 401
    async with serve_emulator(api_key=KEY) as strict:
        body = {"model": "openai/gpt-4o", "messages": user("x")}
        wrong = await http.post(
            f"{strict.base_url}/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-or-v1-wrong"},
        )
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "User not found."
        right = await http.post(f"{strict.base_url}/chat/completions", json=body)
        assert right.status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "openai/gpt-4o"}, 'Input required: specify "prompt" or "messages"'),
        ({"model": "openai/gpt-4o", "messages": []}, 'Input required: specify "prompt" or "messages"'),
        ({"model": "acme/nope", "messages": user("x")}, "acme/nope is not a valid model ID"),
        (
            {"model": "openai/gpt-4o", "models": ["acme/nope"], "messages": user("x")},
            "acme/nope is not a valid model ID",
        ),
        (
            {"model": "openai/gpt-4o", "models": ["openai/o1"] * 4, "messages": user("x")},
            "models array must have 3 items or fewer",
        ),
        (
            {"model": "openai/gpt-4o", "messages": user("x"), "stream": True},
            "streaming not supported by the routeq emulator",
        ),
        (
            {"model": "openai/gpt-4o", "messages": user("x"), "max_tokens": 0},
            "max_tokens must be a positive integer",
        ),
    ],
)
async def test_invalid_requests_are_400(http: httpx.AsyncClient, body: dict[str, Any], message: str) -> None:
    resp = await http.post("/chat/completions", json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == 400
    assert resp.json()["error"]["message"] == message


async def test_unknown_fields_are_ignored_and_variants_resolve(http: httpx.AsyncClient) -> None:
    resp = await complete(
        http,
        model="openai/gpt-4o-mini:nitro",
        messages=user("hi"),
        usage={"include": True},
        transforms=["middle-out"],
        route="fallback",
        stream_options={"include_usage": True},
        provider={"order": ["openai"]},
        temperature=0,
        something_new={"x": 1},
    )
    assert resp.status_code == 200
    assert resp.json()["model"] == "openai/gpt-4o-mini"


async def test_bad_json_and_unknown_paths(http: httpx.AsyncClient) -> None:
    resp = await http.post(
        "/chat/completions", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    missing = await http.get("/does/not/exist")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
    assert (await http.get("/chat/completions")).status_code == 405


async def test_tools_filter_models_without_tool_support(
    http: httpx.AsyncClient, emu: RunningEmulator
) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    only = await complete(http, model="google/gemma-2-9b-it:free", messages=user("hi"), tools=tools)
    assert only.status_code == 404
    assert only.json()["error"]["message"].startswith("No endpoints found that support tool use")
    chained = await complete(
        http,
        model="google/gemma-2-9b-it:free",
        models=["openai/gpt-4o-mini"],
        messages=user("hi"),
        tools=tools,
    )
    assert chained.status_code == 200 and chained.json()["model"] == "openai/gpt-4o-mini"
    assert "google/gemma-2-9b-it:free" not in emu.stats()["attempts"]


async def test_images_filter_text_only_models(http: httpx.AsyncClient) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    only = await complete(http, model="meta-llama/llama-3.1-8b-instruct", messages=messages)
    assert only.status_code == 404 and "image input" in only.json()["error"]["message"]
    chained = await complete(
        http,
        model="meta-llama/llama-3.1-8b-instruct",
        models=["google/gemini-2.0-flash-001"],
        messages=messages,
    )
    doc = chained.json()
    assert doc["model"] == "google/gemini-2.0-flash-001" and doc["provider"] == "Google AI Studio"
    text_tokens = math.ceil(len("What is in this picture?") / 4)
    assert doc["usage"]["prompt_tokens"] == text_tokens + 4 + 85


async def test_max_tokens_cuts_the_completion(http: httpx.AsyncClient) -> None:
    prompt = " ".join(f"word{i}" for i in range(40))
    full = (await complete(http, model="anthropic/claude-3-haiku", messages=user(prompt))).json()
    assert full["choices"][0]["finish_reason"] == "stop"
    assert full["choices"][0]["native_finish_reason"] == "end_turn"
    assert full["usage"]["completion_tokens"] > 5
    cut = (await complete(http, model="anthropic/claude-3-haiku", messages=user(prompt), max_tokens=5)).json()
    assert cut["usage"]["completion_tokens"] == 5
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["choices"][0]["native_finish_reason"] == "max_tokens"
    assert full["choices"][0]["message"]["content"].startswith(cut["choices"][0]["message"]["content"])


async def test_content_is_deterministic(http: httpx.AsyncClient) -> None:
    prompts = [f"Classify this review: item {i} was fine" for i in range(12)]
    first = [await complete(http, model="openai/gpt-4o-mini", messages=user(p)) for p in prompts]
    again = [await complete(http, model="anthropic/claude-3-haiku", messages=user(p)) for p in prompts]
    labels = [r.json()["choices"][0]["message"]["content"] for r in first]
    assert labels == [r.json()["choices"][0]["message"]["content"] for r in again]
    assert {label.removeprefix("label: ") for label in labels} <= set(LABELS)
    assert len(set(labels)) > 1  # the hash spreads prompts over the labels


async def test_tool_call_when_the_prompt_says_call(http: httpx.AsyncClient) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                },
            },
        },
        {"type": "function", "function": {"name": "other"}},
    ]
    resp = await complete(
        http, model="openai/gpt-4o", messages=user("Please call the weather tool for Paris"), tools=tools
    )
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert set(json.loads(call["function"]["arguments"])) == {"city", "days"}
    plain = await complete(http, model="openai/gpt-4o", messages=user("What is the weather?"), tools=tools)
    assert plain.json()["choices"][0]["finish_reason"] == "stop"
    named = await complete(
        http,
        model="openai/gpt-4o",
        messages=user("What is the weather?"),
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "other"}},
    )
    assert named.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "other"


async def test_json_schema_response_format_parses(http: httpx.AsyncClient) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["spam", "ham"]}, "reason": {"type": "string"}},
    }
    resp = await complete(
        http,
        model="openai/gpt-4o-mini",
        messages=user("Is this spam?"),
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    parsed = json.loads(resp.json()["choices"][0]["message"]["content"])
    assert parsed["label"] in ("spam", "ham") and isinstance(parsed["reason"], str)


async def test_context_length_error_moves_to_the_next_model(http: httpx.AsyncClient) -> None:
    long_prompt = "x" * 40_000  # 10,004 tokens > gemma's 8,192
    only = await complete(http, model="google/gemma-2-9b-it:free", messages=user(long_prompt))
    assert only.status_code == 400
    assert only.json()["error"]["metadata"]["error_type"] == "context_length_exceeded"
    chained = await complete(
        http,
        model="google/gemma-2-9b-it:free",
        models=["meta-llama/llama-3.1-8b-instruct"],
        messages=user(long_prompt),
    )
    assert chained.status_code == 200 and chained.json()["model"] == "meta-llama/llama-3.1-8b-instruct"


async def test_credit_limit_gives_402(http: httpx.AsyncClient) -> None:
    async with serve_emulator(credit_limit="0.001") as limited:
        url = f"{limited.base_url}/chat/completions"
        # gpt-4o worst case: 5 prompt tokens + 1000 completion tokens ≈ $0.01 > $0.001, so a
        # pre-flight 402 names what is affordable: (0.001 - 5 * 2.5e-6) / 1e-5 = 98.75 → 98.
        resp = await http.post(
            url, json={"model": "openai/gpt-4o", "messages": user("hi"), "max_tokens": 1000}
        )
        assert resp.status_code == 402
        error = resp.json()["error"]
        assert error["message"].startswith("This request requires more credits, or fewer max_tokens.")
        assert "You requested up to 1000 tokens, but can only afford 98." in error["message"]
        assert error["metadata"]["previous_errors"][0]["status"] == 402
        # A smaller request fits; a fallback to a cheaper model also works.
        small = await http.post(
            url, json={"model": "openai/gpt-4o", "messages": user("hi"), "max_tokens": 50}
        )
        assert small.status_code == 200
        cheap = await http.post(
            url,
            json={
                "model": "openai/gpt-4o",
                "models": ["openai/gpt-4o-mini"],
                "messages": user("hi"),
                "max_tokens": 1000,
            },
        )
        assert cheap.status_code == 200 and cheap.json()["model"] == "openai/gpt-4o-mini"
        key = decimal_json(await http.get(f"{limited.base_url}/key"))["data"]
        assert key["limit"] == Decimal("0.001")
        assert key["limit_remaining"] == Decimal("0.001") - key["usage"]
