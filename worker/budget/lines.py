"""Which budget counters one job touches: a :class:`BudgetLine` per applicable budget.

A job is subject to a budget only when its context carries the budget's scope field: a job
without ``user_id`` is not charged to a per-user budget (it still counts against ``global`` and
any other budget whose field it has). ``None``, ``""`` and non-scalar values count as absent.
Cap whatever must always be capped with a ``global`` (or tenant) budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from producer_client.keys import DEFAULT_PREFIX, Keys
from worker.budget.config import BudgetDef
from worker.budget.windows import WindowKind, expire_at, window_id


@dataclass(frozen=True)
class BudgetLine:
    """One counter a reservation charges, pinned to the window current at reservation time."""

    name: str
    scope: str  # scope value: "global", "user:u-42", "tags.region:eu"
    window: str  # window id: "2026-11-22", "2026-W47", "total" ...
    key: str  # "{prefix}budget:{name}:{scope}:{window}"
    limit_nano: int
    expire_at: int | None = None  # unix seconds; None keeps the counter forever
    alerts: tuple[int, ...] = ()


def scope_value(budget: BudgetDef, context: Mapping[str, Any]) -> str | None:
    """``"global"``, ``"user:u-42"``, ``"tags.region:eu"``; ``None`` when the job is not subject."""
    path = budget.field_path
    if not path:
        return "global"
    value: Any = context
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if isinstance(value, bool):
        return f"{budget.scope}:{'true' if value else 'false'}"
    if isinstance(value, int | float | str) and value != "":
        return f"{budget.scope}:{value}"
    return None


_WINDOWS: dict[tuple[Any, ...], tuple[str, int | None]] = {}  # (kind, tz, second) -> (id, expiry)
_WINDOWS_MAX = 256


def _window(kind: WindowKind, now: datetime, tz: tzinfo | str | None) -> tuple[str, int | None]:
    """(window id, counter expiry) at ``now``, remembered per whole second: every window starts on
    a whole second (offsets are whole minutes), so all instants of one second share both."""
    key = (kind, tz, int(now.timestamp()) if now.tzinfo is not None else now)
    hit = _WINDOWS.get(key)
    if hit is None:
        if len(_WINDOWS) >= _WINDOWS_MAX:
            _WINDOWS.clear()
        hit = _WINDOWS[key] = (window_id(kind, now, tz), expire_at(kind, now, tz))
    return hit


def applicable(
    budgets: Sequence[BudgetDef],
    context: Mapping[str, Any],
    now: datetime,
    tz: tzinfo | str | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
) -> tuple[BudgetLine, ...]:
    """The budget lines a job with ``context`` is subject to at ``now`` (aware) in ``tz``."""
    lines: list[BudgetLine] = []
    for budget in budgets:
        scope = scope_value(budget, context)
        if scope is None:
            continue
        window, expiry = _window(budget.window, now, tz)
        lines.append(
            BudgetLine(
                name=budget.name,
                scope=scope,
                window=window,
                key=Keys(prefix).budget_line(budget.name, scope, window),
                limit_nano=budget.limit_nano,
                expire_at=expiry,
                alerts=budget.alerts,
            )
        )
    return tuple(lines)
