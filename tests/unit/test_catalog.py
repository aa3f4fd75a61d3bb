"""The offline catalog: real /models shape, the prices the product relies on, exact costs."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer_client.money import usd_to_nano
from worker.catalog import Catalog, CatalogError
from worker.shipped import CATALOG, CATALOG_ENV, catalog_file, shipped

PER_MILLION = Decimal(1_000_000)
# (prompt, completion) USD per 1M tokens, as the product brief states them.
EXPECTED_PRICES = {
    "meta-llama/llama-3.1-8b-instruct": ("0.06", "0.06"),
    "openai/gpt-4o-mini": ("0.15", "0.60"),
    "openai/gpt-4o": ("2.50", "10.00"),
    "anthropic/claude-3.5-sonnet": ("3", "15"),
    "anthropic/claude-3-haiku": ("0.25", "1.25"),
    "google/gemini-2.0-flash-001": ("0.10", "0.40"),
    "openai/o1": ("15", "60"),
    "google/gemma-2-9b-it:free": ("0", "0"),
}


_CATALOG = Catalog.load()


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.mark.parametrize(("model_id", "prices"), EXPECTED_PRICES.items())
def test_catalog_prices_per_million(catalog: Catalog, model_id: str, prices: tuple[str, str]) -> None:
    info = catalog.get(model_id)
    assert info is not None, model_id
    assert info.prompt_price * PER_MILLION == Decimal(prices[0])
    assert info.completion_price * PER_MILLION == Decimal(prices[1])
    assert info.request_price == 0


def test_file_keeps_the_real_models_shape() -> None:
    doc = json.loads(shipped(CATALOG).read_text())
    assert set(doc) == {"data"}
    for entry in doc["data"]:
        assert not [k for k in entry if k.startswith("x-")], entry["id"]
        assert all(isinstance(v, str) for v in entry["pricing"].values()), entry["id"]
        assert isinstance(entry["context_length"], int)
        assert set(entry["architecture"]["input_modalities"]) <= {"text", "image", "file", "audio", "video"}
        assert isinstance(entry["top_provider"]["max_completion_tokens"], int)
        assert isinstance(entry["supported_parameters"], list)


def test_capabilities_and_providers(catalog: Catalog) -> None:
    free = catalog.get("google/gemma-2-9b-it:free")
    assert free is not None
    assert free.is_free and not free.supports_tools and free.input_modalities == {"text"}
    gpt4o = catalog.get("openai/gpt-4o")
    assert gpt4o is not None and gpt4o.supports_tools and gpt4o.supports_images
    llama = catalog.get("meta-llama/llama-3.1-8b-instruct")
    assert llama is not None and not llama.supports_images
    providers = {m.id.split("/")[0]: m.provider_name for m in catalog}
    assert providers["openai"] == "OpenAI"
    assert providers["anthropic"] == "Anthropic"
    assert providers["google"] == "Google AI Studio"
    assert providers["meta-llama"] == "DeepInfra"
    assert "openai/o1" in catalog and "nope/model" not in catalog
    assert catalog.ids()[0] == "google/gemma-2-9b-it:free"  # document order
    assert len(catalog.ids()) >= 10


def test_cost_matches_a_captured_openrouter_response(catalog: Catalog) -> None:
    # Capture in the reference: gpt-4o-mini, 29 prompt + 33 completion tokens → 0.00002415 USD.
    mini = catalog.get("openai/gpt-4o-mini")
    assert mini is not None
    assert mini.cost_usd(29, 33) == Decimal("0.00002415")
    assert mini.cost_nano(29, 33) == 24_150


@given(prompt=st.integers(0, 2_000_000), completion=st.integers(0, 200_000))
def test_cost_nano_never_undercounts(prompt: int, completion: int) -> None:
    for info in _CATALOG:
        exact = info.cost_usd(prompt, completion) * 1_000_000_000
        up = info.cost_nano(prompt, completion)
        assert exact <= up < exact + 3
        assert info.cost_nano(prompt, completion, round_up=False) <= up


def test_from_models_json_skips_unpriceable_entries() -> None:
    doc = {
        "data": [
            {
                "id": "openrouter/auto",
                "context_length": 2000000,
                "pricing": {"prompt": "-1", "completion": "-1"},
            },
            {"id": "x/no-context", "context_length": None, "pricing": {"prompt": "0", "completion": "0"}},
            {"id": "x/float-price", "context_length": 10, "pricing": {"prompt": 0.1, "completion": "0"}},
            {"id": "x/no-completion-price", "context_length": 10, "pricing": {"prompt": "0.1"}},
            {
                "id": "x/ok",
                "context_length": None,
                "top_provider": {"context_length": 4096, "max_completion_tokens": None},
                "pricing": {"prompt": "0.000001", "completion": "0.000002", "request": "0.01"},
                "supported_parameters": ["tools"],
            },
        ],
        "total_count": 4,
    }
    catalog = Catalog.from_models_json(doc)
    assert catalog.ids() == ("x/ok",)
    info = catalog.get("x/ok")
    assert info is not None
    assert info.context_length == 4096 and info.max_completion_tokens is None
    assert info.supports_tools and info.input_modalities == {"text"}
    assert info.cost_usd(1000, 500) == Decimal("0.012")
    assert info.cost_nano(1000, 500) == usd_to_nano("0.012")
    assert info.provider_name == "X"


def test_invalid_documents_raise(tmp_path: Path) -> None:
    with pytest.raises(CatalogError):
        Catalog.from_models_json({"models": []})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CatalogError):
        Catalog.load(bad)


def test_env_overrides_the_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    custom = tmp_path / "models.json"
    custom.write_text(
        json.dumps(
            {"data": [{"id": "a/b", "context_length": 100, "pricing": {"prompt": "0", "completion": "0"}}]}
        )
    )
    monkeypatch.setenv(CATALOG_ENV, str(custom))
    assert catalog_file() == custom
    assert Catalog.load().ids() == ("a/b",)
    monkeypatch.delenv(CATALOG_ENV)
    assert catalog_file().read_bytes() == shipped(CATALOG).read_bytes()
    assert len(Catalog.load()) > 1
