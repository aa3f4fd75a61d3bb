"""Retry policy invariants and Retry-After parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.openrouter.backoff import RetryPolicy, parse_rate_limit_reset, parse_retry_after

seconds = st.floats(min_value=0, max_value=120, allow_nan=False, allow_infinity=False)


@given(
    retry=st.integers(min_value=0, max_value=5000),
    base=seconds,
    cap=seconds,
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_is_within_zero_and_the_capped_exponential(
    retry: int, base: float, cap: float, seed: int
) -> None:
    policy = RetryPolicy(max_retries=10, base_s=base, cap_s=cap, max_retry_after_s=30)
    delay = policy.backoff(retry, random.Random(seed))
    assert 0 <= delay <= min(cap, base * 2.0 ** min(retry, 64))


@given(
    retry=st.integers(min_value=0, max_value=20),
    max_retries=st.integers(min_value=0, max_value=20),
    base=seconds,
    cap=seconds,
    max_retry_after=seconds,
    retry_after=st.none() | seconds,
    time_left=st.none() | st.floats(min_value=-5, max_value=200, allow_nan=False),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_wait_never_passes_the_deadline_nor_the_retry_after_ceiling(
    retry: int,
    max_retries: int,
    base: float,
    cap: float,
    max_retry_after: float,
    retry_after: float | None,
    time_left: float | None,
    seed: int,
) -> None:
    policy = RetryPolicy(max_retries, base, cap, max_retry_after)
    wait = policy.wait(retry, retry_after, random.Random(seed), time_left)
    if retry >= max_retries:
        assert wait is None
    if wait is None:
        return
    assert wait >= 0
    assert wait <= max(cap, max_retry_after)
    if time_left is not None:
        assert wait < time_left
    if retry_after is not None:
        assert retry_after <= max_retry_after
        assert wait >= retry_after


class _TopRng(random.Random):
    """Always draws the top of the jitter range, exposing the exponential ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceiling_doubles_then_caps() -> None:
    policy = RetryPolicy(max_retries=10, base_s=0.5, cap_s=3.0, max_retry_after_s=30)
    assert [policy.backoff(n, _TopRng()) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_retry_after_beyond_the_ceiling_gives_up_instead_of_waiting() -> None:
    policy = RetryPolicy(max_retries=5, base_s=0.1, cap_s=1.0, max_retry_after_s=30)
    assert policy.wait(0, 31.0, random.Random(1), None) is None
    assert policy.wait(0, 30.0, random.Random(1), None) == 30.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("5", 5.0), (" 1.5 ", 1.5), ("0", 0.0), ("-1", None), ("nan", None), ("inf", None),
     ("", None), (None, None), ("soon", None)],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    future = format_datetime(now + timedelta(seconds=42), usegmt=True)
    past = format_datetime(now - timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(future, now=now) == 42.0
    assert parse_retry_after(past, now=now) == 0.0


def test_parse_rate_limit_reset_reads_epoch_milliseconds() -> None:
    assert parse_rate_limit_reset("1788825600000", now_epoch_s=1788825590.0) == 10.0
    assert parse_rate_limit_reset("1788825600", now_epoch_s=1788825590.0) == 10.0
    assert parse_rate_limit_reset("1788825600000", now_epoch_s=1788825700.0) == 0.0
    assert parse_rate_limit_reset("tomorrow", now_epoch_s=0.0) is None
