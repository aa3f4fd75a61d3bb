"""The model catalog: what each model costs and can do, read from an `/api/v1/models` document.

The same loader reads the offline snapshot shipped in the package (``config/models.json``), a
live ``/models`` response and a version stored in Redis, so the routing engine, the cost
estimator and the emulator agree on one set of prices. Prices stay Decimal (USD per token, per
request), parsed exactly from their decimal strings; costs become integer nano-USD; floats never
carry money.

Every entry is validated on its own (:func:`validate_models_json`): one that cannot be priced
safely is refused with a reason instead of failing the whole catalog, because a live ``/models``
response always holds a few odd ones, and instead of being priced at a made-up figure or as free
(LiteLLM's failures). Variable-price routers (``openrouter/auto``, prices ``"-1"``) are kept and
marked: they are reachable by id, carry the catalog's ceiling prices (never free), and are left
out of iteration, so nothing ever chooses them by price.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import orjson

from producer_client.money import price_cost_nano, usd_to_nano
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

#: Above these a price is a unit or typing error, not a price (the dearest real models cost
#: about 0.0006 USD per output token; per-request prices are cents).
MAX_TOKEN_PRICE: Final = Decimal("0.01")
MAX_REQUEST_PRICE: Final = Decimal("5")
#: The longest real context windows are about 10M tokens.
MAX_CONTEXT_LENGTH: Final = 100_000_000
MAX_ID_LENGTH: Final = 128
MAX_NAME_LENGTH: Final = 200
#: An entry's kept fields (descriptions are dropped) beyond this are padding, not a model.
MAX_ENTRY_BYTES: Final = 16_384
#: ``author/slug[:variant]``; ``~`` starts alias ids (``~anthropic/claude-sonnet-latest``).
_ID = re.compile(r"~?[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._:+-]*")
#: A plain decimal: no underscores, spaces, NaN or Infinity (which ``Decimal()`` would accept).
_DECIMAL = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,2})?")
_ROUTER_PRICE: Final = Decimal(-1)
#: Fields of a ``/models`` entry kept in a validated document (descriptions, links and the like
#: are dropped: they are large, unused, and the place a hostile body would pad).
_KEPT_FIELDS: Final = (
    "id", "canonical_slug", "name", "created", "context_length", "architecture", "pricing",
    "top_provider", "per_request_limits", "supported_parameters", "reasoning", "expiration_date",
    "knowledge_cutoff",
)


class CatalogError(ValueError):
    """A catalog document that cannot be read at all."""


def provider_for(model_id: str) -> str:
    """Display name of the provider that serves ``model_id`` (derived from its author)."""
    author = model_id.split("/", 1)[0].lstrip("~")
    return _PROVIDER_BY_AUTHOR.get(author, author.replace("-", " ").title())


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model's prices (USD per token / per request) and capabilities.

    ``variable_price``: a router whose real price depends on the model it picks; its price fields
    hold the catalog's ceiling, so a reservation for it is never too small.
    """

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
    variable_price: bool = False
    cache_read_price: Decimal | None = None
    cache_write_price: Decimal | None = None
    output_modalities: frozenset[str] = frozenset({"text"})

    @property
    def author(self) -> str:
        """The id's prefix before ``/`` (``anthropic`` of ``anthropic/claude-3.5-sonnet``)."""
        return self.id.split("/", 1)[0].lstrip("~")

    @property
    def supports_images(self) -> bool:
        return "image" in self.input_modalities

    @property
    def supports_structured_outputs(self) -> bool:
        """Honours a ``json_schema`` response format. OpenRouter lists ``structured_outputs`` for
        that; ``response_format`` alone often means JSON mode only (any JSON, no schema)."""
        return "structured_outputs" in self.supported_parameters

    @property
    def is_free(self) -> bool:
        """Every price is zero (a router is never free: its price is unknown until it picks)."""
        return not (self.variable_price or self.prompt_price or self.completion_price or self.request_price)

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
class Refusal:
    """One ``/models`` entry left out of the catalog, and why.

    ``id`` is printable (control and non-ASCII characters escaped, at most 100 characters) or
    None when the entry has no string id; ``index`` is the entry's position in ``data``.
    """

    index: int
    id: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "reason": self.reason}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Refusal:
        index, model_id, reason = doc.get("index"), doc.get("id"), doc.get("reason")
        return cls(
            index=index if isinstance(index, int) else -1,
            id=model_id if isinstance(model_id, str) else None,
            reason=str(reason),
        )


@dataclass(frozen=True, slots=True)
class Catalog:
    """An immutable id → ModelInfo map that remembers the document it came from.

    Iteration, ``len`` and ``ids()`` cover the models with a fixed price; ``get`` and ``in`` also
    know the variable-price routers (``routers``), so rules may name them.
    """

    models: Mapping[str, ModelInfo]
    document: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    routers: Mapping[str, ModelInfo] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, model_id: str) -> ModelInfo | None:
        info = self.models.get(model_id)
        return info if info is not None else self.routers.get(model_id)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self.models or model_id in self.routers

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def ids(self) -> tuple[str, ...]:
        """Ids of the fixed-price models, in document order."""
        return tuple(self.models)

    def everything(self) -> tuple[ModelInfo, ...]:
        """Every model, routers included (fixed-price ones first, each group in document order)."""
        return (*self.models.values(), *self.routers.values())

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

        Entries that fail validation are skipped (see :func:`validate_models_json` for the
        reasons); the catalog keeps ``doc`` itself as its ``document``.
        """
        return replace(validate_models_json(doc).catalog, document=MappingProxyType(dict(doc)))

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


@dataclass(frozen=True, slots=True)
class Validated:
    """The outcome of validating a ``/models`` document.

    ``document`` is what a catalog version stores: ``{"data": [...]}`` with only the accepted
    entries, each trimmed to the fields routeq reads; building a catalog from it gives the same
    ``catalog`` again. ``entries`` counts ``data`` as received; ``total_count`` is the body's own
    claim (None when absent), which tells a cut-off list from a complete one.
    """

    catalog: Catalog
    refused: tuple[Refusal, ...]
    document: dict[str, Any]
    entries: int
    total_count: int | None


def validate_models_json(doc: object) -> Validated:
    """Validate every entry of a ``/models`` body; :class:`CatalogError` if it has no ``data`` list."""
    if not isinstance(doc, Mapping):
        raise CatalogError("a models document must be a JSON object")
    data = doc.get("data")
    if not isinstance(data, list):
        raise CatalogError(f'a models document needs a "data" list (got {_json_type(data)})')
    refused: list[Refusal] = []
    accepted: list[tuple[int, ModelInfo, dict[str, Any]]] = []
    for index, entry in enumerate(data):
        outcome = _validate_entry(entry)
        if isinstance(outcome, str):
            refused.append(Refusal(index, _shown_id(entry), outcome))
        else:
            accepted.append((index, *outcome))
    accepted = _without_duplicates(accepted, refused)
    priced = {info.id: info for _, info, _ in accepted if not info.variable_price}
    ceiling = _ceiling(priced.values())
    routers: dict[str, ModelInfo] = {}
    kept: list[dict[str, Any]] = []
    for index, info, trimmed in accepted:
        if info.variable_price:
            if ceiling is None:
                refused.append(Refusal(index, info.id, "variable price (a router) and no fixed-price "
                                                       "model to bound it"))
                continue
            routers[info.id] = replace(info, prompt_price=ceiling.prompt_price,
                                       completion_price=ceiling.completion_price,
                                       request_price=ceiling.request_price)
        kept.append(trimmed)
    refused.sort(key=lambda r: r.index)
    catalog = Catalog(models=MappingProxyType(priced), document=MappingProxyType({"data": kept}),
                      routers=MappingProxyType(routers))
    total = doc.get("total_count")
    return Validated(
        catalog=catalog,
        refused=tuple(refused),
        document={"data": kept},
        entries=len(data),
        total_count=total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


class _Refused(Exception):
    """Why one entry is left out (raised while reading it)."""


def _validate_entry(entry: object) -> str | tuple[ModelInfo, dict[str, Any]]:
    """The entry's model and trimmed JSON, or the reason it is refused."""
    try:
        return _read_entry(entry)
    except _Refused as exc:
        return str(exc)


def _read_entry(entry: object) -> tuple[ModelInfo, dict[str, Any]]:
    if not isinstance(entry, Mapping):
        raise _Refused(f"not an object ({_json_type(entry)})")
    model_id = _model_id(entry.get("id"))
    top = entry.get("top_provider")
    top = top if isinstance(top, Mapping) else {}
    context = _context_length(entry.get("context_length"), top.get("context_length"))
    prompt, completion, request, cache_read, cache_write = _prices(entry.get("pricing"))
    trimmed = {k: entry[k] for k in _KEPT_FIELDS if k in entry}
    size = len(orjson.dumps(trimmed))
    if size > MAX_ENTRY_BYTES:
        raise _Refused(f"entry too large ({size} bytes without its description)")
    arch = entry.get("architecture")
    arch = arch if isinstance(arch, Mapping) else {}
    supported = _strings(entry.get("supported_parameters"), ())
    name = entry.get("name")
    info = ModelInfo(
        id=model_id,
        name=name[:MAX_NAME_LENGTH] if isinstance(name, str) and name else model_id,
        context_length=context,
        max_completion_tokens=_positive_int(top.get("max_completion_tokens")),
        prompt_price=prompt,
        completion_price=completion,
        request_price=request,
        input_modalities=_strings(arch.get("input_modalities"), ("text",)),
        supports_tools="tools" in supported,
        provider_name=provider_for(model_id),
        supported_parameters=supported,
        variable_price=prompt == _ROUTER_PRICE,
        cache_read_price=cache_read,
        cache_write_price=cache_write,
        output_modalities=_strings(arch.get("output_modalities"), ("text",)),
    )
    return info, trimmed


def _model_id(value: object) -> str:
    if value is None or value == "":
        raise _Refused("missing id")
    if not isinstance(value, str):
        raise _Refused(f"id is a {_json_type(value)}")
    if len(value) > MAX_ID_LENGTH:
        raise _Refused(f"id longer than {MAX_ID_LENGTH} characters")
    if not _ID.fullmatch(value):
        raise _Refused("id is not author/slug of letters, digits and . _ - : + ~")
    return value


def _prices(pricing: object) -> tuple[Decimal, Decimal, Decimal, Decimal | None, Decimal | None]:
    """(prompt, completion, request, cache read, cache write), exact.

    ``prompt`` and ``completion`` are required: a model must never look free by omission. Both
    exactly ``-1`` mark a variable-price router (its other prices are not read).
    """
    if not isinstance(pricing, Mapping):
        raise _Refused("missing pricing" if pricing is None else f"pricing is a {_json_type(pricing)}")
    prompt = _price(pricing, "prompt", negative_ok=True)
    completion = _price(pricing, "completion", negative_ok=True)
    if prompt is None or completion is None:
        raise _Refused(f"missing {'prompt' if prompt is None else 'completion'} price")
    if prompt == completion == _ROUTER_PRICE:
        return prompt, completion, Decimal(0), None, None
    for key, value in (("prompt", prompt), ("completion", completion)):
        if value < 0:
            raise _Refused(f"{key} price {_shown(str(pricing.get(key)))} is negative")
    request = _price(pricing, "request", ceiling=MAX_REQUEST_PRICE)
    cache_read = _price(pricing, "input_cache_read")
    cache_write = _price(pricing, "input_cache_write")
    return prompt, completion, request or Decimal(0), cache_read, cache_write


def _price(
    pricing: Mapping[str, Any], key: str, *, ceiling: Decimal = MAX_TOKEN_PRICE, negative_ok: bool = False
) -> Decimal | None:
    """The exact price at ``key`` (None when absent). ``negative_ok`` leaves the sign to the
    caller, which tells a router's ``-1`` from a bad price."""
    value = pricing.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        kind = "a JSON number" if isinstance(value, float) else f"a {_json_type(value)}"
        raise _Refused(f"{key} price is {kind}, not a decimal string")
    text = str(value)
    if not _DECIMAL.fullmatch(text):
        raise _Refused(f"{key} price {_shown(text)} is not a decimal number")
    price = Decimal(text)  # exact: the pattern admits only plain decimals
    if price < 0 and not negative_ok:
        raise _Refused(f"{key} price {_shown(text)} is negative")
    if price > ceiling:
        raise _Refused(f"{key} price {_shown(text)} USD is above the {ceiling} ceiling")
    return price


def _context_length(own: object, top: object) -> int:
    for value in (own, top):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Refused(f"context length is a {_json_type(value)}, not an integer")
        if value <= 0:
            raise _Refused(f"context length {value} is not positive")
        if value > MAX_CONTEXT_LENGTH:
            raise _Refused(f"context length {value} is implausible (> {MAX_CONTEXT_LENGTH})")
        return value
    raise _Refused("missing context length")


def _without_duplicates(
    accepted: list[tuple[int, ModelInfo, dict[str, Any]]], refused: list[Refusal]
) -> list[tuple[int, ModelInfo, dict[str, Any]]]:
    """Identical repeats keep the first; differing entries under one id are all refused, since
    nothing says which of their prices is the real one."""
    by_id: dict[str, list[tuple[int, ModelInfo, dict[str, Any]]]] = {}
    for item in accepted:
        by_id.setdefault(item[1].id, []).append(item)
    kept = []
    for item in accepted:
        group = by_id[item[1].id]
        if len(group) == 1:
            kept.append(item)
        elif all(other[1] == group[0][1] for other in group):
            if item is group[0]:
                kept.append(item)
            else:
                refused.append(Refusal(item[0], item[1].id, f"duplicate of entry #{group[0][0]}"))
        else:
            others = ", ".join(f"#{other[0]}" for other in group if other is not item)
            refused.append(Refusal(item[0], item[1].id, f"duplicate id with different content ({others})"))
    return kept


def _ceiling(priced: Iterable[ModelInfo]) -> ModelInfo | None:
    models = list(priced)
    if not models:
        return None
    return Catalog(models=MappingProxyType({m.id: m for m in models})).dearest()


def _strings(value: object, default: tuple[str, ...]) -> frozenset[str]:
    items = value if isinstance(value, list) else default
    return frozenset(v for v in items if isinstance(v, str))


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def _shown(text: str, limit: int = 40) -> str:
    """``text`` safe to print: quoted, control and non-ASCII characters escaped, shortened."""
    shown = ascii(text[:limit])
    return shown[:-1] + "…'" if len(text) > limit else shown


def _shown_id(entry: object) -> str | None:
    model_id = entry.get("id") if isinstance(entry, Mapping) else None
    if not isinstance(model_id, str):
        return None
    escaped = ascii(model_id[:100])[1:-1]
    return escaped if len(model_id) <= 100 else escaped + "…"
