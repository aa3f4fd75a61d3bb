"""Window ids and ends per kind and timezone, and which counters a job's context selects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.budget import WINDOW_KINDS, applicable, parse_budgets, window_end, window_id
from worker.budget.windows import EXPIRY_MARGIN, expire_at

PARIS = "Europe/Paris"


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("hour", "2026-11-22T13"),
        ("day", "2026-11-22"),
        ("week", "2026-W47"),
        ("month", "2026-11"),
        ("total", "total"),
    ],
)
def test_window_id_for_each_kind_in_utc(kind: str, expected: str) -> None:
    assert window_id(kind, at("2026-11-22T13:05:00+00:00")) == expected  # type: ignore[arg-type]


def test_paris_day_starts_at_paris_midnight() -> None:
    before, after = at("2026-11-22T22:59:59+00:00"), at("2026-11-22T23:00:00+00:00")
    assert window_id("day", before, PARIS) == "2026-11-22"
    assert window_id("day", after, PARIS) == "2026-11-23"
    # The same instants are one UTC day.
    assert window_id("day", before) == window_id("day", after) == "2026-11-22"
    # Sunday 23:00 UTC is already Monday in Paris: a new ISO week there.
    assert (window_id("week", before, PARIS), window_id("week", after, PARIS)) == ("2026-W47", "2026-W48")


def test_iso_week_uses_the_iso_year() -> None:
    assert window_id("week", at("2027-01-01T12:00:00+00:00")) == "2026-W53"
    assert window_id("week", at("2027-01-04T00:00:00+00:00")) == "2027-W01"


def test_day_across_spring_dst_change_lasts_23_hours_in_paris() -> None:
    now = at("2026-03-29T10:00:00+00:00")
    end = window_end("day", now, PARIS)
    start = window_end("day", now - timedelta(days=1), PARIS)
    assert end is not None and start is not None
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)
    assert end.astimezone(UTC) == at("2026-03-29T22:00:00+00:00")


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([k for k in WINDOW_KINDS if k != "total"]),
    st.sampled_from(["UTC", PARIS, "America/New_York", "Asia/Kolkata"]),
)
def test_window_end_is_the_first_instant_of_the_next_window(now: datetime, kind: str, tz: str) -> None:
    end = window_end(kind, now, tz)  # type: ignore[arg-type]
    assert end is not None and end > now
    assert window_id(kind, end, tz) != window_id(kind, now, tz)  # type: ignore[arg-type]
    assert window_id(kind, end - timedelta(microseconds=1), tz) == window_id(kind, now, tz)  # type: ignore[arg-type]
    expiry = expire_at(kind, now, tz)  # type: ignore[arg-type]
    assert expiry is not None and expiry >= (end + EXPIRY_MARGIN).timestamp()


def test_total_window_never_ends() -> None:
    now = at("2026-11-22T13:05:00+00:00")
    assert window_end("total", now) is None and expire_at("total", now) is None


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_id("day", datetime(2026, 11, 22))


BUDGETS = parse_budgets(
    [
        {"name": "global-daily", "scope": "global", "limit_usd": "50.00", "window": "day"},
        {"name": "per-tenant", "scope": "tenant", "limit_usd": "10", "window": "month"},
        {"name": "per-user", "scope": "user", "limit_usd": "1.50", "window": "hour"},
        {"name": "per-region", "scope": "tags.region", "limit_usd": "5", "window": "week"},
    ]
)


def test_applicable_builds_one_line_per_budget_with_keys_and_limits() -> None:
    context = {"user_id": "u-42", "tenant": "acme", "tags": {"region": "eu"}}
    lines = applicable(BUDGETS, context, at("2026-11-22T13:05:00+00:00"), None, prefix="rq:")
    assert [(line.scope, line.window, line.key) for line in lines] == [
        ("global", "2026-11-22", "rq:budget:global-daily:global:2026-11-22"),
        ("tenant:acme", "2026-11", "rq:budget:per-tenant:tenant:acme:2026-11"),
        ("user:u-42", "2026-11-22T13", "rq:budget:per-user:user:u-42:2026-11-22T13"),
        ("tags.region:eu", "2026-W47", "rq:budget:per-region:tags.region:eu:2026-W47"),
    ]
    assert [line.limit_nano for line in lines] == [b.limit_nano for b in BUDGETS]


@pytest.mark.parametrize(
    "context",
    [{}, {"user_id": None, "tenant": "", "tags": None}, {"tags": {"region": ["eu"]}}, {"tags": "eu"}],
)
def test_a_job_without_the_scope_field_is_not_subject_to_that_budget(context: dict[str, object]) -> None:
    lines = applicable(BUDGETS, context, at("2026-11-22T13:05:00+00:00"))
    assert [line.name for line in lines] == ["global-daily"]


def test_window_id_is_taken_in_the_rules_timezone() -> None:
    lines = applicable(BUDGETS, {}, at("2026-11-22T23:30:00+00:00"), PARIS)
    assert lines[0].window == "2026-11-23"
