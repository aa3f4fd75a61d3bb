"""Validation of a ``POST /chat/completions`` body into a :class:`CompletionRequest`.

Only what the emulator acts on is checked; unknown fields (``usage``, ``transforms``,
``route``, ``stream_options``, ``provider``, sampling parameters...) are accepted and ignored,
as OpenRouter does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from worker.catalog import Catalog, ModelInfo
from worker.emulator import content
from worker.emulator.errors import Rejected, bad_request, no_endpoints

MAX_FALLBACK_MODELS = 3
# Dynamic variants apply to any model; the response names the base model.
_DYNAMIC_VARIANTS = (":nitro", ":floor", ":exacto", ":online")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str | None
    models: tuple[str, ...]
    chain: tuple[ModelInfo, ...]  # model then models, resolved, deduplicated
    messages: tuple[Mapping[str, Any], ...]
    max_tokens: int | None
    tools: tuple[Mapping[str, Any], ...]
    tool_choice: object
    response_format: object
    prompt_tokens: int
    needs_images: bool

    @property
    def needs_tools(self) -> bool:
        return bool(self.tools)

    def capable_models(self) -> tuple[ModelInfo, ...]:
        """The chain without models that lack tool use or image input (404 if none is left)."""
        capable = tuple(
            m
            for m in self.chain
            if (m.supports_tools or not self.needs_tools) and (m.supports_images or not self.needs_images)
        )
        if capable:
            return capable
        primary = self.chain[0]
        missing = "tool use" if self.needs_tools and not primary.supports_tools else "image input"
        raise Rejected(no_endpoints(missing))


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(bad_request("Invalid JSON in request body")) from exc
    if not isinstance(doc, dict):
        raise Rejected(bad_request("The request body must be a JSON object"))
    return doc


def resolve_model(catalog: Catalog, model_id: str) -> ModelInfo | None:
    info = catalog.get(model_id)
    if info is None:
        for suffix in _DYNAMIC_VARIANTS:
            if model_id.endswith(suffix):
                return catalog.get(model_id.removesuffix(suffix))
    return info


def parse_completion(doc: Mapping[str, Any], catalog: Catalog) -> CompletionRequest:
    """Validate ``doc``; raise :class:`Rejected` (400) the way OpenRouter's pre-flight does."""
    if doc.get("stream") is True:
        raise Rejected(bad_request("streaming not supported by the routeq emulator"))
    messages = _messages(doc.get("messages"))
    model, models = doc.get("model"), doc.get("models")
    if model is not None and not isinstance(model, str):
        raise Rejected(bad_request("model must be a string"))
    if models is None:
        models = []
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise Rejected(bad_request("models must be an array of model IDs"))
    if len(models) > MAX_FALLBACK_MODELS:
        raise Rejected(bad_request("models array must have 3 items or fewer"))
    chain: dict[str, ModelInfo] = {}
    for slug in [model, *models] if model else models:
        info = resolve_model(catalog, slug)
        if info is None:
            raise Rejected(bad_request(f"{slug} is not a valid model ID"))
        chain.setdefault(info.id, info)
    if not chain:
        raise Rejected(bad_request("No model specified: set model or models"))
    return CompletionRequest(
        model=model,
        models=tuple(models),
        chain=tuple(chain.values()),
        messages=messages,
        max_tokens=_max_tokens(doc),
        tools=_tools(doc.get("tools")),
        tool_choice=doc.get("tool_choice"),
        response_format=doc.get("response_format"),
        prompt_tokens=content.prompt_tokens(messages),
        needs_images=any(content.image_parts(m) for m in messages),
    )


def _messages(raw: object) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(raw, list) or not raw:
        raise Rejected(bad_request('Input required: specify "prompt" or "messages"'))
    for i, message in enumerate(raw):
        if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
            raise Rejected(bad_request(f"messages[{i}]: expected an object with a valid role"))
        if not isinstance(message.get("content"), str | list | None):
            raise Rejected(bad_request(f"messages[{i}].content: expected a string or an array"))
    return tuple(raw)


def _max_tokens(doc: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise Rejected(bad_request(f"{key} must be a positive integer"))
        return value
    return None


def _tools(raw: object) -> tuple[Mapping[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise Rejected(bad_request("tools must be an array"))
    for i, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise Rejected(bad_request(f"tools[{i}]: expected a function tool with a name"))
    return tuple(raw)
