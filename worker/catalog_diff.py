"""What changed between two catalog versions: models added and removed, prices, capabilities.

Pure (no I/O): ``routeq catalog diff`` prints it, and the sync's judge reads the same comparison
to tell a normal price update from a suspicious one. Prices are compared exactly (Decimal) and
shown per million tokens, the unit people quote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from worker.catalog import Catalog, ModelInfo

PER_MILLION: Final = Decimal(1_000_000)

def per_million(per_token: Decimal | None) -> Decimal | None:
    return None if per_token is None else per_token * PER_MILLION


#: (field, unit, price getter): per-token prices are shown per million tokens.
_PRICES: Final[tuple[tuple[str, str, Callable[[ModelInfo], Decimal | None]], ...]] = (
    ("prompt", "USD/Mtok", lambda m: m.prompt_price * PER_MILLION),
    ("completion", "USD/Mtok", lambda m: m.completion_price * PER_MILLION),
    ("request", "USD/request", lambda m: m.request_price),
    ("cache_read", "USD/Mtok", lambda m: per_million(m.cache_read_price)),
    ("cache_write", "USD/Mtok", lambda m: per_million(m.cache_write_price)),
)

_CAPABILITIES: Final[tuple[tuple[str, Callable[[ModelInfo], object]], ...]] = (
    ("context_length", lambda m: m.context_length),
    ("max_completion_tokens", lambda m: m.max_completion_tokens),
    ("tools", lambda m: m.supports_tools),
    ("vision", lambda m: m.supports_images),
    ("structured_outputs", lambda m: m.supports_structured_outputs),
    ("variable_price", lambda m: m.variable_price),
    ("input_modalities", lambda m: ",".join(sorted(m.input_modalities))),
)


def decimal_text(value: Decimal | None) -> str:
    """A price as a plain decimal string (``"2.5"``, ``"0"``, ``"0.0000001"``), never exponent."""
    if value is None:
        return "-"
    if not value:
        return "0"
    return format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class PriceChange:
    model: str
    price: str  # prompt | completion | request | cache_read | cache_write
    unit: str
    old: Decimal | None
    new: Decimal | None

    @property
    def factor(self) -> Decimal | None:
        """new / old; None when either side is zero or absent."""
        if not self.old or not self.new:
            return None
        return self.new / self.old

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "price": self.price, "unit": self.unit,
                "old": decimal_text(self.old), "new": decimal_text(self.new)}


@dataclass(frozen=True, slots=True)
class CapabilityChange:
    model: str
    capability: str
    old: object
    new: object

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "capability": self.capability, "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class CatalogDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    prices: tuple[PriceChange, ...]
    capabilities: tuple[CapabilityChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.prices or self.capabilities)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "price_changes": [p.as_dict() for p in self.prices],
            "capability_changes": [c.as_dict() for c in self.capabilities],
        }


def diff_catalogs(old: Catalog, new: Catalog) -> CatalogDiff:
    """Every difference, routers included, in ``new``'s model order (removed ones in ``old``'s)."""
    before = {m.id: m for m in old.everything()}
    after = {m.id: m for m in new.everything()}
    prices: list[PriceChange] = []
    capabilities: list[CapabilityChange] = []
    for model_id, now in after.items():
        was = before.get(model_id)
        if was is None:
            continue
        if not (was.variable_price or now.variable_price):  # a router's prices are the ceiling's
            for name, unit, get in _PRICES:
                a, b = get(was), get(now)
                if a != b:
                    prices.append(PriceChange(model_id, name, unit, a, b))
        for cap, read in _CAPABILITIES:
            a_cap, b_cap = read(was), read(now)
            if a_cap != b_cap:
                capabilities.append(CapabilityChange(model_id, cap, a_cap, b_cap))
    return CatalogDiff(
        added=tuple(m for m in after if m not in before),
        removed=tuple(m for m in before if m not in after),
        prices=tuple(prices),
        capabilities=tuple(capabilities),
    )

