"""Retry policy: exponential backoff with full jitter, bounded by Retry-After and the deadline.

Full jitter (a uniform draw in ``[0, min(cap, base * 2**n)]``) spreads a thousand workers that
failed together, so they do not come back together. A server hint (Retry-After) is a floor, not a
suggestion: retrying before it only earns another 429. When the hint is longer than we are willing
to wait, or the wait would pass the caller's deadline, the window is given up instead of slept on.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .settings import OpenRouterSettings

_MAX_EXPONENT = 62  # 2**62 * base overflows no float and is far beyond any cap


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    base_s: float
    cap_s: float
    max_retry_after_s: float

    @classmethod
    def from_settings(cls, settings: OpenRouterSettings) -> RetryPolicy:
        return cls(
            max_retries=settings.max_retries,
            base_s=settings.backoff_base_s,
            cap_s=settings.backoff_cap_s,
            max_retry_after_s=settings.max_retry_after_s,
        )

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Jittered delay before retry number ``retry`` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** min(retry, _MAX_EXPONENT))
        return rng.uniform(0.0, ceiling)

    def wait(
        self,
        retry: int,
        retry_after_s: float | None,
        rng: random.Random,
        time_left_s: float | None,
    ) -> float | None:
        """Seconds to sleep before retry ``retry``, or None to give up on this window."""
        if retry >= self.max_retries:
            return None
        if retry_after_s is not None and retry_after_s > self.max_retry_after_s:
            return None
        delay = self.backoff(retry, rng)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        if time_left_s is not None and delay >= time_left_s:
            return None
        return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_date(text, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until_date(text: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def parse_rate_limit_reset(value: str | None, now_epoch_s: float) -> float | None:
    """``X-RateLimit-Reset`` (epoch milliseconds per OpenRouter; seconds tolerated) → seconds."""
    if value is None:
        return None
    try:
        stamp = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(stamp) or stamp <= 0:
        return None
    reset_s = stamp / 1000.0 if stamp > 1e11 else stamp
    return max(0.0, reset_s - now_epoch_s)
