"""An unknown price is never free: what the worker charges for a model the catalog cannot price."""

from __future__ import annotations

from worker.catalog import Catalog
from worker.shipped import CATALOG, shipped
from worker.spend import priced, worst_case

CATALOG_NOW = Catalog.load(shipped(CATALOG))


def test_a_known_model_is_charged_its_own_prices() -> None:
    info = priced(CATALOG_NOW, "openai/gpt-4o-mini")
    assert info.id == "openai/gpt-4o-mini"
    assert info.cost_nano(1000, 100) == CATALOG_NOW.get("openai/gpt-4o-mini").cost_nano(1000, 100)  # type: ignore[union-attr]


def test_an_unknown_model_is_charged_the_dearest_known_prices() -> None:
    unknown = priced(CATALOG_NOW, "acme/not-in-the-catalog")
    dearest = max(CATALOG_NOW.models.values(), key=lambda m: m.completion_price)
    assert unknown.cost_nano(1000, 1000) >= dearest.cost_nano(1000, 1000) > 0
    # and the worst case held for a chain holding it is at least as much as for the dearest model
    assert worst_case(CATALOG_NOW, ["acme/not-in-the-catalog"], 100, 100) >= worst_case(
        CATALOG_NOW, [dearest.id], 100, 100)
