"""Time windows on the command line: ``--since 7d``, ``--until 2026-11-30T12:00``.

Relative amounts (``90m``, ``36h``, ``7d``, ``2w``) count back from now; absolute ones are ISO
dates or date-times (UTC unless they carry an offset). Rollups are hourly, so a window covers
every hour that starts in ``[since, until)`` with ``since`` rounded down to its hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

_RELATIVE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
_UNITS: Final = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


class WindowError(ValueError):
    """A time the command line cannot read, or a window that ends before it starts."""


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()

    @property
    def days(self) -> float:
        return self.seconds / 86_400

    def describe(self) -> str:
        return f"{_show(self.since)} to {_show(self.until)} UTC"


def parse_time(text: str, now: datetime) -> datetime:
    """``now`` minus a relative amount, ``now`` for ``"now"``, or an ISO date / date-time."""
    raw = text.strip().lower()
    if raw == "now":
        return now
    match = _RELATIVE.fullmatch(raw)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise WindowError(
            f"cannot read the time {text!r}: give an amount back from now (90m, 36h, 7d, 2w) "
            "or an ISO date or date-time (2026-11-30, 2026-11-30T14:00)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window(since: str, until: str | None = None, *, now: datetime | None = None) -> Window:
    """The window ``[since rounded down to its hour, until)``; ``until`` defaults to now."""
    current = now or datetime.now(UTC)
    start = parse_time(since, current).replace(minute=0, second=0, microsecond=0)
    end = parse_time(until, current) if until else current
    if end <= start:
        raise WindowError(f"the window ends ({_show(end)}) before it starts ({_show(start)})")
    return Window(start, end)


def _show(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
