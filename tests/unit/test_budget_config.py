"""Budget definitions: what the rules file may say, and how a bad one is reported."""

from __future__ import annotations

from typing import Any

import pytest

from worker.budget import DEFAULT_ALERTS, MAX_LIMIT_NANO, BudgetConfigError, BudgetDef, parse_budgets

SPEC_EXAMPLES: list[dict[str, Any]] = [
    {"name": "global-daily", "scope": "global", "limit_usd": "50.00", "window": "day"},
    {"name": "per-tenant", "scope": "tenant", "limit_usd": "10", "window": "month"},
    {"name": "per-user", "scope": "user", "limit_usd": "1.50", "window": "day"},
    {"name": "per-region", "scope": "tags.region", "limit_usd": 5, "window": "week"},
]


def problems_of(raw: Any) -> dict[str, str]:
    with pytest.raises(BudgetConfigError) as info:
        parse_budgets(raw)
    return dict(info.value.problems)


def test_parses_the_documented_examples_exactly() -> None:
    budgets = parse_budgets(SPEC_EXAMPLES)
    assert [b.name for b in budgets] == ["global-daily", "per-tenant", "per-user", "per-region"]
    assert [b.limit_nano for b in budgets] == [50_000_000_000, 10_000_000_000, 1_500_000_000, 5_000_000_000]
    assert [b.window for b in budgets] == ["day", "month", "day", "week"]
    assert all(b.alerts == DEFAULT_ALERTS for b in budgets)
    assert [b.field_path for b in budgets] == [(), ("tenant",), ("user_id",), ("tags", "region")]


def test_custom_alerts_are_sorted_and_deduplicated() -> None:
    (budget,) = parse_budgets([{**SPEC_EXAMPLES[0], "alerts": [100, 25, 25, 120]}])
    assert budget.alerts == (25, 100, 120)


def test_float_limit_is_rejected_naming_its_json_path() -> None:
    problems = problems_of([SPEC_EXAMPLES[0], {**SPEC_EXAMPLES[1], "limit_usd": 10.5}])
    assert list(problems) == ["$.budgets[1].limit_usd"]
    assert "float" in problems["$.budgets[1].limit_usd"]


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    raw = [
        {"name": "a", "scope": "user", "limit_usd": "1", "window": "day", "colour": "red"},
        {"name": "z", "scope": "user", "limit_usd": 2.5, "colour": "red"},
        {"name": "b", "scope": "no spaces!", "limit_usd": "1", "window": "fortnight"},
        {"name": "a", "scope": "global", "limit_usd": "1", "window": "day"},
        {"name": "c", "scope": "global", "limit_usd": "0", "window": "day"},
        {"name": "d", "scope": "global", "limit_usd": "-3", "window": "day"},
        {"name": "e", "scope": "global", "window": "day"},
        {"name": "f:g", "scope": "global", "limit_usd": True, "window": "day", "alerts": [0.5]},
        "not an object",
    ]
    problems = problems_of(raw)
    assert set(problems) == {
        "$.budgets[0].colour",
        "$.budgets[1].colour",
        "$.budgets[1].limit_usd",
        "$.budgets[1].window",
        "$.budgets[2].scope",
        "$.budgets[2].window",
        "$.budgets[3].name",
        "$.budgets[4].limit_usd",
        "$.budgets[5].limit_usd",
        "$.budgets[6].limit_usd",
        "$.budgets[7].name",
        "$.budgets[7].limit_usd",
        "$.budgets[7].alerts",
        "$.budgets[8]",
    }
    assert "float" in problems["$.budgets[1].limit_usd"]
    assert "duplicate" in problems["$.budgets[3].name"]
    assert "positive" in problems["$.budgets[4].limit_usd"]
    assert "required" in problems["$.budgets[6].limit_usd"]


@pytest.mark.parametrize(
    ("limit", "word"),
    [("0.0000000001", "decimal places"), ("abc", "decimal"), (str(MAX_LIMIT_NANO // 10**9 + 1), "at most")],
)
def test_limits_must_be_whole_nano_and_within_exact_range(limit: str, word: str) -> None:
    problems = problems_of([{**SPEC_EXAMPLES[0], "limit_usd": limit}])
    assert word in problems["$.budgets[0].limit_usd"]


def test_custom_path_prefix_is_used() -> None:
    with pytest.raises(BudgetConfigError) as info:
        parse_budgets([{"name": "x"}], path="$.profiles.eu.budgets")
    assert all(path.startswith("$.profiles.eu.budgets[0].") for path, _ in info.value.problems)


def test_budgets_must_be_a_list() -> None:
    assert list(problems_of({"name": "x"})) == ["$.budgets"]


def test_empty_list_is_no_budget() -> None:
    assert parse_budgets([]) == ()


def test_budget_def_is_frozen() -> None:
    (budget,) = parse_budgets(SPEC_EXAMPLES[:1])
    assert isinstance(budget, BudgetDef)
    with pytest.raises(AttributeError):
        budget.limit_nano = 1  # type: ignore[misc]
