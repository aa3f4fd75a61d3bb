"""What rules see: the tightest budget, reserved money counted as used."""

from __future__ import annotations

from worker.budget import BudgetState, budget_view

USD = 1_000_000_000


def state(name: str, spent: int, reserved: int, limit: int) -> BudgetState:
    return BudgetState(f"k:{name}", name, f"scope:{name}", "2026-11-22", spent, reserved, limit)


def test_no_applicable_budget_gives_nothing() -> None:
    assert budget_view([]) == {}


def test_tightest_budget_is_the_one_with_least_remaining_counting_reservations() -> None:
    view = budget_view(
        [
            state("global", spent=10 * USD, reserved=0, limit=50 * USD),  # 40 left
            state("user", spent=USD // 2, reserved=USD // 4, limit=USD),  # 0.25 left
            state("tenant", spent=0, reserved=0, limit=2 * USD),  # 2 left
        ]
    )
    assert view["budget"]["name"] == "user"
    assert view["budget"]["remaining_nano"] == USD // 4
    assert view["budget_remaining"] == view["budget"]["remaining"] == 0.25
    assert view["budget"]["used_ratio"] == 0.75
    # The seed's low-budget rule works on these numbers.
    assert view["budget_remaining"] < 1.0


def test_overrun_budget_shows_zero_remaining_not_negative() -> None:
    view = budget_view([state("user", spent=3 * USD, reserved=USD, limit=2 * USD)])
    assert view["budget"]["remaining_nano"] == 0
    assert view["budget_remaining"] == 0.0
    assert view["budget"]["used_ratio"] == 2.0
