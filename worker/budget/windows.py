"""Budget windows: which calendar period an instant falls in, and when that period ends.

Windows are calendar periods in the rules file's timezone (a "day" in Paris starts at Paris
midnight), named by stable ids that become part of the Redis key. The id is decided once, at
reservation time, and travels with the reservation, so a job that straddles midnight still settles
against the window it reserved in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo

WindowKind = Literal["hour", "day", "week", "month", "total"]
WINDOW_KINDS: Final[tuple[WindowKind, ...]] = get_args(WindowKind)

# Counters outlive their window by this much so late settlements (leases, retries) and
# `routeq budget status` still find the previous period before Redis drops it.
EXPIRY_MARGIN: Final = timedelta(days=1)


def resolve_tz(tz: tzinfo | str | None) -> tzinfo:
    """A tzinfo from an IANA name (``"Europe/Paris"``); ``None`` means UTC."""
    if tz is None:
        return UTC
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _local(now: datetime, tz: tzinfo | str | None) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (a naive time has no window)")
    return now.astimezone(resolve_tz(tz))


def window_id(kind: WindowKind, now: datetime, tz: tzinfo | str | None = None) -> str:
    """The id of the window containing ``now``: ``2026-11-22T13``, ``2026-11-22``, ``2026-W47``
    (ISO week and ISO year, Monday start), ``2026-11`` or ``total``."""
    local = _local(now, tz)
    if kind == "hour":
        return local.strftime("%Y-%m-%dT%H")
    if kind == "day":
        return local.strftime("%Y-%m-%d")
    if kind == "week":
        year, week, _ = local.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if kind == "month":
        return local.strftime("%Y-%m")
    if kind == "total":
        return "total"
    raise ValueError(f"unknown window kind {kind!r}")


def window_end(kind: WindowKind, now: datetime, tz: tzinfo | str | None = None) -> datetime | None:
    """The first local instant after the window containing ``now``; ``None`` for ``total``.

    Arithmetic is on the wall clock, so a day across a DST change lasts 23 or 25 hours.
    """
    local = _local(now, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    if kind == "hour":
        return local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if kind == "day":
        return midnight + timedelta(days=1)
    if kind == "week":
        return midnight + timedelta(days=7 - local.weekday())
    if kind == "month":
        if local.month == 12:
            return midnight.replace(year=local.year + 1, month=1, day=1)
        return midnight.replace(month=local.month + 1, day=1)
    if kind == "total":
        return None
    raise ValueError(f"unknown window kind {kind!r}")


def expire_at(kind: WindowKind, now: datetime, tz: tzinfo | str | None = None) -> int | None:
    """Unix time (s) at which the window's counter may be dropped; ``None``: keep forever."""
    end = window_end(kind, now, tz)
    return None if end is None else int((end + EXPIRY_MARGIN).timestamp()) + 1
