from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer_client.money import MoneyError, nano_to_usd, price_cost_nano, to_decimal, usd_to_nano


def test_float_cost_from_openrouter_is_read_exactly() -> None:
    # 29 x 0.00000015 + 33 x 0.0000006, as in a captured OpenRouter response
    assert usd_to_nano(0.00002415) == 24_150


def test_round_up_for_reservations() -> None:
    assert usd_to_nano("0.0000000001", round_up=True) == 1
    assert usd_to_nano("0.0000000001") == 0


def test_price_cost_rounds_up_fractional_nanos() -> None:
    # 3 tokens at $0.0375 per million tokens = 112.5 nano-USD
    assert price_cost_nano(3, Decimal("0.0000000375")) == 113
    assert price_cost_nano(3, Decimal("0.0000000375"), round_up=False) == 112
    assert price_cost_nano(1_000_000, Decimal("0.00000015")) == 150_000_000


@pytest.mark.parametrize("bad", ["abc", "nan", "inf", True, ""])
def test_bad_amounts_are_refused(bad: object) -> None:
    with pytest.raises(MoneyError):
        to_decimal(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_nano_string_round_trip(nano: int) -> None:
    assert usd_to_nano(nano_to_usd(nano)) == nano
