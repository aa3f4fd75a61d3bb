"""Exact money: integer nano-USD inside, decimal strings at the edges.

Floats never carry money here. OpenRouter reports ``usage.cost`` as a JSON number, so
it is read through ``str()`` into a Decimal before it becomes nano-USD.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, InvalidOperation

NANO_PER_USD = 1_000_000_000
_NANO = Decimal(NANO_PER_USD)


class MoneyError(ValueError):
    """A value that cannot be read as an amount of USD."""


def to_decimal(value: Decimal | str | int | float) -> Decimal:
    """Read a USD amount exactly; a float goes through its shortest repr."""
    if isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not d.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return d


def usd_to_nano(value: Decimal | str | int | float, *, round_up: bool = False) -> int:
    """USD → integer nano-USD; half-even by default, ceiling when over-estimating is the safe side."""
    scaled = to_decimal(value) * _NANO
    rounding = ROUND_CEILING if round_up else ROUND_HALF_EVEN
    return int(scaled.to_integral_value(rounding=rounding))


def nano_to_usd(nano: int) -> str:
    """Integer nano-USD → canonical decimal string with 9 places, e.g. ``"0.000024150"``."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO_PER_USD)
    return f"{sign}{whole}.{frac:09d}"


def price_cost_nano(tokens: int, usd_per_token: Decimal, *, round_up: bool = True) -> int:
    """Cost of ``tokens`` at a per-token USD price, in nano-USD (ceiling by default)."""
    return usd_to_nano(usd_per_token * tokens, round_up=round_up)
