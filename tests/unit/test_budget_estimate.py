"""Worst-case cost: never below what any model of the chain can bill, never a nano above the
exact bound."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer_client.money import NANO_PER_USD
from worker.budget import worst_case_nano


@dataclass(frozen=True)
class Prices:
    prompt_price: Decimal
    completion_price: Decimal
    request_price: Decimal


MINI = Prices(Decimal("0.00000015"), Decimal("0.0000006"), Decimal(0))
SONNET = Prices(Decimal("0.000003"), Decimal("0.000015"), Decimal(0))
PER_REQUEST = Prices(Decimal("0.0000001"), Decimal("0.0000001"), Decimal("0.005"))


def test_single_model_bound_is_exact() -> None:
    # 1000 * 0.00000015 + 512 * 0.0000006 = 0.00015 + 0.0003072 USD
    assert worst_case_nano(1000, 512, [MINI]) == 457_200


def test_takes_each_price_from_the_most_expensive_model_of_the_chain() -> None:
    bound = worst_case_nano(1000, 100, [MINI, PER_REQUEST, SONNET])
    assert bound == 1000 * 3_000 + 100 * 15_000 + 5_000_000
    assert bound > max(worst_case_nano(1000, 100, [m]) for m in (MINI, PER_REQUEST, SONNET))


def test_fractional_nano_rounds_up() -> None:
    tiny = Prices(Decimal("0.0000000001"), Decimal(0), Decimal(0))
    assert worst_case_nano(1, 0, [tiny]) == 1
    assert worst_case_nano(10, 0, [tiny]) == 1
    assert worst_case_nano(11, 0, [tiny]) == 2


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "chain"),
    [(-1, 10, [MINI]), (10, -1, [MINI]), (10, 10, []), (1, 1, [Prices(Decimal(-1), Decimal(0), Decimal(0))])],
)
def test_invalid_inputs_are_refused(prompt: int, max_tokens: int, chain: list[Prices]) -> None:
    with pytest.raises(ValueError):
        worst_case_nano(prompt, max_tokens, chain)


price = st.decimals(min_value=0, max_value=Decimal("0.001"), places=12, allow_nan=False)
prices = st.builds(Prices, price, price, st.decimals(min_value=0, max_value=1, places=9))


@given(
    st.integers(0, 2_000_000),
    st.integers(0, 200_000),
    st.lists(prices, min_size=1, max_size=5),
    st.data(),
)
def test_bound_covers_any_single_call_within_limits(
    prompt: int, max_tokens: int, chain: list[Prices], data: st.DataObject
) -> None:
    bound = worst_case_nano(prompt, max_tokens, chain)
    model = data.draw(st.sampled_from(chain))
    completion = data.draw(st.integers(0, max_tokens))
    billed = prompt * model.prompt_price + completion * model.completion_price + model.request_price
    assert bound >= billed * NANO_PER_USD
    exact = (
        prompt * max(m.prompt_price for m in chain)
        + max_tokens * max(m.completion_price for m in chain)
        + max(m.request_price for m in chain)
    ) * NANO_PER_USD
    assert bound - 1 < exact <= bound
