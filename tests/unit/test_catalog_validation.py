"""Validating /models bodies: every bad entry refused with its reason, exact prices, routers marked,
and the judge that keeps a suspicious catalog from replacing a good one."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.catalog import Catalog, CatalogError, validate_models_json
from worker.catalog_diff import diff_catalogs
from worker.catalog_sync import judge, judge_document
from worker.emulator.models_faults import HOSTILE_FLAWS, ModelsConfig, models_response
from worker.shipped import CATALOG, shipped

SHIPPED = orjson.loads(shipped(CATALOG).read_bytes())


def entry(model_id: str = "acme/model", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": model_id,
        "name": model_id,
        "context_length": 8192,
        "pricing": {"prompt": "0.000001", "completion": "0.000002"},
        "supported_parameters": ["tools", "max_tokens"],
    }
    base.update(fields)
    return base


def catalog_of(*entries: Any) -> Catalog:
    return validate_models_json({"data": list(entries)}).catalog


def test_the_shipped_catalog_validates_without_a_refusal() -> None:
    validated = validate_models_json(SHIPPED)
    assert validated.refused == ()
    assert len(validated.catalog) == validated.entries == len(SHIPPED["data"])


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"pricing": {"prompt": "-0.000001", "completion": "0"}}, "prompt price '-0.000001' is negative"),
        ({"pricing": {"prompt": "0", "completion": "-2"}}, "completion price '-2' is negative"),
        ({"pricing": {"prompt": "cheap", "completion": "0"}}, "prompt price 'cheap' is not a decimal number"),
        ({"pricing": {"prompt": "NaN", "completion": "0"}}, "is not a decimal number"),
        ({"pricing": {"prompt": "Infinity", "completion": "0"}}, "is not a decimal number"),
        ({"pricing": {"prompt": "1_000", "completion": "0"}}, "is not a decimal number"),
        ({"pricing": {"prompt": " 0.1", "completion": "0"}}, "is not a decimal number"),
        ({"pricing": {"prompt": "1e999", "completion": "0"}}, "is not a decimal number"),
        ({"pricing": {"prompt": "0.02", "completion": "0"}}, "above the 0.01 ceiling"),
        ({"pricing": {"prompt": "0", "completion": "0", "request": "6"}}, "request price '6' USD is above"),
        ({"pricing": {"prompt": 1e-06, "completion": "0"}}, "prompt price is a JSON number, not a decimal"),
        ({"pricing": {"prompt": True, "completion": "0"}}, "prompt price is a boolean"),
        ({"pricing": {"completion": "0.000002"}}, "missing prompt price"),
        ({"pricing": {"prompt": "0.000002"}}, "missing completion price"),
        ({"pricing": {"prompt": "0", "completion": "0", "input_cache_read": "x"}}, "input_cache_read price"),
        ({"pricing": None}, "missing pricing"),
        ({"pricing": "free"}, "pricing is a string"),
        ({"pricing": {"prompt": "-1", "completion": "0.000002"}}, "prompt price '-1' is negative"),
        ({"id": None}, "missing id"),
        ({"id": ""}, "missing id"),
        ({"id": 42}, "id is a number"),
        ({"id": "no-author"}, "id is not author/slug"),
        ({"id": "acme/<script>"}, "id is not author/slug"),
        ({"id": "acme/a b"}, "id is not author/slug"),
        ({"id": "acme/x\n"}, "id is not author/slug"),
        ({"id": "acme/" + "x" * 200}, "id longer than 128"),
        ({"context_length": None}, "missing context length"),
        ({"context_length": 0}, "context length 0 is not positive"),
        ({"context_length": -5}, "context length -5 is not positive"),
        ({"context_length": "8192"}, "context length is a string"),
        ({"context_length": 8192.0}, "context length is a number"),
        ({"context_length": 10**12}, "implausible"),
        ({"name": "n" * 20_000}, "entry too large"),
    ],
)
def test_a_bad_entry_is_refused_with_its_reason(patch: dict[str, Any], reason: str) -> None:
    good = entry("acme/good")
    validated = validate_models_json({"data": [good, entry(**patch)]})
    assert validated.catalog.ids() == ("acme/good",)
    assert [(r.index, reason in r.reason) for r in validated.refused] == [(1, True)], validated.refused


@pytest.mark.parametrize("bad", ["a string", None, 7, ["a"], True])
def test_an_entry_that_is_not_an_object_is_refused(bad: Any) -> None:
    validated = validate_models_json({"data": [bad, entry()]})
    assert validated.catalog.ids() == ("acme/model",)
    (refusal,) = validated.refused
    assert refusal.index == 0 and refusal.id is None and refusal.reason.startswith("not an object")


@pytest.mark.parametrize("doc", [{"models": []}, {"data": {"0": {}}}, {"data": "x"}, [], "data", None])
def test_a_document_without_a_data_list_is_refused_whole(doc: Any) -> None:
    with pytest.raises(CatalogError):
        validate_models_json(doc)


def test_refused_ids_are_printable() -> None:
    validated = validate_models_json({"data": [entry("\x1b[31macme/red\x1b[0m"), entry("acme/é")]})
    assert [r.id for r in validated.refused] == ["\\x1b[31macme/red\\x1b[0m", "acme/\\xe9"]
    assert all(r.id is not None and r.id.isprintable() and r.id.isascii() for r in validated.refused)


@given(units=st.integers(0, 10**12), scale=st.integers(0, 18), tokens=st.integers(0, 10**7))
def test_prices_are_exact_decimal_strings(units: int, scale: int, tokens: int) -> None:
    text = str(Decimal(units).scaleb(-scale))  # e.g. "0.000000150", "1.5E-10": what a price may look like
    if Decimal(text) > Decimal("0.01"):
        return
    info = catalog_of(entry(pricing={"prompt": text, "completion": text})).get("acme/model")
    assert info is not None
    assert info.prompt_price == Decimal(units).scaleb(-scale)
    assert info.cost_usd(tokens, 0) == tokens * Decimal(units).scaleb(-scale)  # no rounding anywhere
    exact_nano = info.cost_usd(tokens, 0) * 1_000_000_000
    assert exact_nano <= info.cost_nano(tokens, 0) < exact_nano + 1


def test_sub_nano_prices_are_kept_exactly() -> None:
    prices = {"prompt": "0.0000000001", "completion": "0.00000000025"}
    info = catalog_of(entry(pricing=prices)).get("acme/model")
    assert info is not None
    assert info.prompt_price == Decimal("1E-10") and not info.is_free
    assert info.cost_usd(3, 4) == Decimal("0.0000000013")
    assert info.cost_nano(3, 4) == 2  # each part rounds up to a whole nano-USD: never undercounts
    assert info.cost_nano(10_000_000, 0) == 1_000_000


def test_variable_price_routers_are_kept_marked_and_never_free() -> None:
    doc = {"data": [
        entry("openrouter/auto", context_length=2_000_000, pricing={"prompt": "-1", "completion": "-1"}),
        entry("acme/cheap", pricing={"prompt": "0.000001", "completion": "0.000002", "request": "0.001"}),
        entry("acme/dear", pricing={"prompt": "0.000003", "completion": "0.000001"}),
        entry("acme/free:free", pricing={"prompt": "0", "completion": "0"}),
    ]}
    validated = validate_models_json(doc)
    catalog = validated.catalog
    assert validated.refused == ()
    router = catalog.get("openrouter/auto")
    assert router is not None and router.variable_price and not router.is_free
    assert "openrouter/auto" in catalog
    # Never chosen by price: not iterated, not counted, not in ids().
    assert catalog.ids() == ("acme/cheap", "acme/dear", "acme/free:free") and len(catalog) == 3
    assert [m.id for m in catalog.everything()] == [*catalog.ids(), "openrouter/auto"]
    # Priced at the catalog's ceiling, price by price, so a reservation for it is never too small.
    assert (router.prompt_price, router.completion_price, router.request_price) == (
        Decimal("0.000003"), Decimal("0.000002"), Decimal("0.001"))
    assert all(router.cost_nano(1000, 1000) >= m.cost_nano(1000, 1000) for m in catalog)
    # The stored document keeps the router's "-1", so reloading it marks it again.
    again = validate_models_json(validated.document).catalog
    assert again.get("openrouter/auto") == router


def test_a_router_with_nothing_to_bound_it_is_refused() -> None:
    router = entry("openrouter/auto", pricing={"prompt": "-1", "completion": "-1"})
    validated = validate_models_json({"data": [router]})
    assert "openrouter/auto" not in validated.catalog
    assert [r.reason for r in validated.refused] == [
        "variable price (a router) and no fixed-price model to bound it"]


def test_duplicate_ids_identical_keep_the_first_different_refuse_all() -> None:
    a = entry("acme/a")
    b = entry("acme/b")
    b_cheaper = entry("acme/b", pricing={"prompt": "0.0000000001", "completion": "0.0000000001"})
    validated = validate_models_json({"data": [a, copy.deepcopy(a), b, b_cheaper]})
    assert validated.catalog.ids() == ("acme/a",)
    assert [(r.index, r.reason) for r in validated.refused] == [
        (1, "duplicate of entry #0"),
        (2, "duplicate id with different content (#3)"),
        (3, "duplicate id with different content (#2)"),
    ]


def test_capabilities_read_from_the_entry() -> None:
    catalog = catalog_of(
        entry("acme/plain", supported_parameters=["max_tokens"]),
        entry("acme/rf", supported_parameters=["response_format"],
              architecture={"input_modalities": ["text", "image"], "output_modalities": ["text"]}),
        entry("acme/so", supported_parameters=["structured_outputs", "tools"],
              top_provider={"max_completion_tokens": 4096, "context_length": 1}),
        entry("~acme/latest"),
    )
    plain, rf, so, alias = (catalog.get(m) for m in ("acme/plain", "acme/rf", "acme/so", "~acme/latest"))
    assert plain is not None and rf is not None and so is not None and alias is not None
    assert not plain.supports_structured_outputs and not plain.supports_tools and not plain.supports_images
    # response_format alone is JSON mode: not structured outputs (a JSON schema) on its own.
    assert not rf.supports_structured_outputs and rf.supports_images and not rf.supports_tools
    assert so.supports_structured_outputs and so.supports_tools and so.max_completion_tokens == 4096
    assert so.context_length == 8192  # the entry's own context length wins over top_provider's
    assert plain.max_completion_tokens is None
    assert (plain.author, alias.author) == ("acme", "acme")


def test_the_validated_document_is_trimmed_and_rebuilds_the_same_catalog() -> None:
    doc = copy.deepcopy(SHIPPED)
    doc["data"][0]["description"] = "x" * (5 * 1024 * 1024)  # a 5 MB body
    doc["data"].append("junk")
    validated = validate_models_json(doc)
    stored = orjson.dumps(validated.document)
    assert len(stored) < 64 * 1024
    assert all("description" not in e for e in validated.document["data"])
    again = validate_models_json(orjson.loads(stored))
    assert again.refused == ()
    assert dict(again.catalog.models) == dict(validated.catalog.models)


def test_every_flaw_the_emulator_serves_is_refused() -> None:
    body = orjson.loads(models_response(ModelsConfig.from_dict({"mode": "hostile", "free": False}),
                                        SHIPPED["data"]).body)
    validated = validate_models_json(body)
    refused = [body["data"][r.index] for r in validated.refused]
    refused_names = {e["name"] for e in refused if isinstance(e, dict)}
    assert set(HOSTILE_FLAWS) <= refused_names
    assert not [m for m in validated.catalog.ids() if m.startswith("hostile/")]
    # The twin of the first real entry (another price under its id) takes both out; nothing else.
    first = SHIPPED["data"][0]["id"]
    assert set(validated.catalog.ids()) == {e["id"] for e in SHIPPED["data"]} - {first}


# -- the judge ------------------------------------------------------------------------------------


def shipped_catalog() -> Catalog:
    return validate_models_json(SHIPPED).catalog


def without(doc: dict[str, Any], count: int) -> dict[str, Any]:
    return {"data": doc["data"][count:]}


def test_judge_accepts_a_normal_update() -> None:
    old = shipped_catalog()
    doc = copy.deepcopy(SHIPPED)
    doc["data"][5]["pricing"]["prompt"] = str(Decimal(doc["data"][5]["pricing"]["prompt"]) * 9)
    doc["data"].append(entry("acme/new-free:free", pricing={"prompt": "0", "completion": "0"}))
    assert judge(old, validate_models_json(doc).catalog) is None
    assert judge(None, old) is None


def test_judge_allows_a_fifth_of_the_models_to_go_not_more() -> None:
    old = catalog_of(*(entry(f"acme/m{i}") for i in range(10)))
    two_gone = catalog_of(*(entry(f"acme/m{i}") for i in range(2, 10)))
    three_gone = catalog_of(*(entry(f"acme/m{i}") for i in range(3, 10)))
    assert judge(old, two_gone) is None
    assert judge(old, three_gone) == "3 of 10 models gone (30%): acme/m0, acme/m1, acme/m2"


def test_judge_refuses_a_paid_model_now_free() -> None:
    doc = copy.deepcopy(SHIPPED)
    paid = next(e for e in doc["data"] if e["pricing"]["completion"] != "0")
    paid["pricing"] = {k: "0" for k in paid["pricing"]}
    why = judge(shipped_catalog(), validate_models_json(doc).catalog)
    assert why == f"paid model now free: {paid['id']}"


def test_judge_refuses_a_price_off_by_a_unit() -> None:
    doc = copy.deepcopy(SHIPPED)
    target = next(e for e in doc["data"] if e["pricing"]["prompt"] != "0")
    target["pricing"]["prompt"] = str(Decimal(target["pricing"]["prompt"]) / 1000)  # per-K read as per-token
    why = judge(shipped_catalog(), validate_models_json(doc).catalog)
    assert why is not None and why.startswith("price changed 100x or more: " + target["id"] + " prompt")


def test_judge_refuses_a_catalog_without_priced_models() -> None:
    assert judge(None, catalog_of()) == "no model with a fixed price"
    assert judge(shipped_catalog(), catalog_of()) == "no model with a fixed price"


def test_judge_document_spots_a_cut_off_list() -> None:
    assert judge_document(validate_models_json({"data": SHIPPED["data"][:4], "total_count": 13})) == (
        "partial list: 4 of 13 entries (total_count)")
    assert judge_document(validate_models_json({"data": SHIPPED["data"], "total_count": 13})) is None
    assert judge_document(validate_models_json({"data": SHIPPED["data"]})) is None


def test_diff_lists_added_removed_prices_and_capabilities() -> None:
    old = catalog_of(entry("acme/a"), entry("acme/b"), entry("acme/c"))
    new = catalog_of(
        entry("acme/a", pricing={"prompt": "0.0000015", "completion": "0.000002"}),
        entry("acme/c", context_length=16384, supported_parameters=["max_tokens"]),
        entry("acme/d"),
    )
    diff = diff_catalogs(old, new)
    assert diff.added == ("acme/d",) and diff.removed == ("acme/b",)
    assert [p.as_dict() for p in diff.prices] == [
        {"model": "acme/a", "price": "prompt", "unit": "USD/Mtok", "old": "1", "new": "1.5"}]
    assert [(c.model, c.capability, c.old, c.new) for c in diff.capabilities] == [
        ("acme/c", "context_length", 8192, 16384), ("acme/c", "tools", True, False)]
    assert diff_catalogs(new, new).empty
