"""What routing rules see of the budget: the tightest applicable counter.

Rules compare with plain numbers (``budget_remaining < 1.0``), so amounts here are float USD.
That is a routing input, never accounting: the ledger's integer nano-USD stay authoritative,
and ``remaining_nano`` is there for exact checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from producer_client.money import NANO_PER_USD
from worker.budget.records import BudgetState


def budget_view(states: Sequence[BudgetState]) -> dict[str, Any]:
    """``{"budget": {...}, "budget_remaining": float}`` for the budget with least remaining
    (reserved money counts as used); ``{}`` when no budget applies."""
    if not states:
        return {}
    tight = min(states, key=lambda s: (s.remaining_nano, -s.used_ratio, s.name))
    remaining = tight.remaining_nano / NANO_PER_USD
    return {
        "budget": {
            "name": tight.name,
            "scope": tight.scope,
            "window": tight.window,
            "remaining": remaining,
            "remaining_nano": tight.remaining_nano,
            "limit": tight.limit_nano / NANO_PER_USD,
            "spent": tight.spent_nano / NANO_PER_USD,
            "used_ratio": tight.used_ratio,
        },
        "budget_remaining": remaining,
    }
