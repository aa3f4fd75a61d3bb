"""The model catalog: what each model costs and can do, read from an `/api/v1/models` document.

The same loader reads the offline snapshot shipped in the package (``config/models.json``) and a
live ``/models`` response, so the routing engine, the cost estimator and the emulator agree on one set of
prices. Prices stay Decimal (USD per token, per request) and costs become integer nano-USD;
floats never carry money.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import orjson

from producer_client.money import MoneyError, price_cost_nano, to_decimal, usd_to_nano
from worker.shipped import PolicyFile, as_policy_file, catalog_file

# OpenRouter reports the serving provider's display name; the catalog only knows the author,
# so the emulator and the cost reports use the provider that usually serves that author.
_PROVIDER_BY_AUTHOR: Mapping[str, str] = MappingProxyType(
    {
        "openai": "OpenAI",
        "anthropic": "Anthropic",
        "google": "Google AI Studio",
        "meta-llama": "DeepInfra",
        "mistralai": "Mistral",
        "deepseek": "DeepSeek",
    }
)


class CatalogError(ValueError):
    """A catalog document that cannot be read at all."""


def provider_for(model_id: str) -> str:
    """Display name of the provider that serves ``model_id`` (derived from its author)."""
    author = model_id.split("/", 1)[0]
    return _PROVIDER_BY_AUTHOR.get(author, author.replace("-", " ").title())


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model's prices (USD per token / per request) and capabilities."""

    id: str
    name: str
    context_length: int
    max_completion_tokens: int | None
    prompt_price: Decimal
    completion_price: Decimal
    request_price: Decimal
    input_modalities: frozenset[str]
    supports_tools: bool
    provider_name: str
    supported_parameters: frozenset[str] = frozenset()

    @property
    def supports_images(self) -> bool:
        return "image" in self.input_modalities

    @property
    def is_free(self) -> bool:
        return not (self.prompt_price or self.completion_price or self.request_price)

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """Exact cost of one call, as OpenRouter bills it (no rounding at all)."""
        return (
            prompt_tokens * self.prompt_price + completion_tokens * self.completion_price + self.request_price
        )

    def cost_nano(self, prompt_tokens: int, completion_tokens: int, *, round_up: bool = True) -> int:
        """Cost of one call in nano-USD; each part rounds up by default (the safe side)."""
        return (
            price_cost_nano(prompt_tokens, self.prompt_price, round_up=round_up)
            + price_cost_nano(completion_tokens, self.completion_price, round_up=round_up)
            + usd_to_nano(self.request_price, round_up=round_up)
        )


@dataclass(frozen=True, slots=True)
class Catalog:
    """An immutable id → ModelInfo map that remembers the document it came from."""

    models: Mapping[str, ModelInfo]
    document: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    def get(self, model_id: str) -> ModelInfo | None:
        return self.models.get(model_id)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self.models

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def ids(self) -> tuple[str, ...]:
        """Model ids in document order."""
        return tuple(self.models)

    def dearest(self) -> ModelInfo:
        """A price ceiling to hold for a model the catalog does not know: every price at its max."""
        priced = [m for m in self.models.values() if min(m.prompt_price, m.completion_price) >= 0]
        if not priced:
            raise CatalogError("the catalog has no priced model to bound an unknown one")
        top = max(priced, key=lambda m: m.completion_price)
        return replace(
            top,
            id="(unknown model)",
            prompt_price=max(m.prompt_price for m in priced),
            completion_price=max(m.completion_price for m in priced),
            request_price=max(max(m.request_price for m in priced), Decimal(0)),
        )

    @classmethod
    def from_models_json(cls, doc: Mapping[str, Any]) -> Catalog:
        """Build from a ``{"data": [Model, ...]}`` document (extra root keys are ignored).

        Entries that cannot be priced (router pseudo-models with ``"-1"`` prices, missing
        ids or context lengths) are skipped rather than failing the whole catalog, because a
        live ``/models`` response always contains some.
        """
        data = doc.get("data") if isinstance(doc, Mapping) else None
        if not isinstance(data, list):
            raise CatalogError('a models document needs a "data" list')
        models: dict[str, ModelInfo] = {}
        for entry in data:
            info = _model_from_entry(entry)
            if info is not None:
                models[info.id] = info
        return cls(models=MappingProxyType(models), document=MappingProxyType(dict(doc)))

    @classmethod
    def load(cls, path: str | os.PathLike[str] | PolicyFile | None = None) -> Catalog:
        """Read a catalog file (default: ``$ROUTEQ_CATALOG``, else the shipped snapshot)."""
        target = catalog_file() if path is None else as_policy_file(path)
        try:
            doc = orjson.loads(target.read_bytes())
        except OSError as exc:
            raise CatalogError(f"cannot read {target}: {exc.strerror or exc}") from None
        except orjson.JSONDecodeError as exc:
            raise CatalogError(f"{target}: not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise CatalogError(f"{target}: the root must be an object")
        return cls.from_models_json(doc)


def _model_from_entry(entry: object) -> ModelInfo | None:
    if not isinstance(entry, Mapping):
        return None
    model_id = entry.get("id")
    pricing = entry.get("pricing")
    if not isinstance(model_id, str) or not model_id or not isinstance(pricing, Mapping):
        return None
    top = entry.get("top_provider")
    top = top if isinstance(top, Mapping) else {}
    context_length = _int_or_none(entry.get("context_length")) or _int_or_none(top.get("context_length"))
    # prompt and completion are required: a model must never look free by omission.
    prompt, completion = _price(pricing.get("prompt")), _price(pricing.get("completion"))
    request = _price(pricing.get("request", "0"))
    if context_length is None or prompt is None or completion is None or request is None:
        return None
    arch = entry.get("architecture")
    modalities = arch.get("input_modalities") if isinstance(arch, Mapping) else None
    params = entry.get("supported_parameters")
    supported = (
        frozenset(p for p in params if isinstance(p, str)) if isinstance(params, list) else frozenset()
    )
    name = entry.get("name")
    return ModelInfo(
        id=model_id,
        name=name if isinstance(name, str) else model_id,
        context_length=context_length,
        max_completion_tokens=_int_or_none(top.get("max_completion_tokens")),
        prompt_price=prompt,
        completion_price=completion,
        request_price=request,
        input_modalities=frozenset(
            m for m in (modalities if isinstance(modalities, list) else ["text"]) if isinstance(m, str)
        ),
        supports_tools="tools" in supported,
        provider_name=provider_for(model_id),
        supported_parameters=supported,
    )


def _price(value: object) -> Decimal | None:
    """A non-negative per-unit price; ``None`` for missing, malformed or negative (router) prices."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    try:
        price = to_decimal(value)
    except MoneyError:
        return None
    return price if price >= 0 else None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
