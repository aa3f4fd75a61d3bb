"""Budget definitions from the rules file's top-level ``"budgets"`` list, validated up front.

A definition names a scope (whose money is capped), a limit and a calendar window::

    {"name": "per-user", "scope": "user", "limit_usd": "1.50", "window": "day",
     "alerts": [50, 80, 100]}

Every problem is reported at once, each with its JSON path, so a bad rules file is fixed in one
pass rather than one error per deploy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar, cast

from producer_client.money import NANO_PER_USD, MoneyError, to_decimal
from worker.budget.windows import WINDOW_KINDS, WindowKind

DEFAULT_ALERTS: Final[tuple[int, ...]] = (50, 80, 100)

# Shorthand scopes read these context fields; any other scope is a dotted path into the context.
SCOPE_FIELDS: Final[Mapping[str, str]] = {"tenant": "tenant", "user": "user_id"}

# Redis Lua numbers are doubles, exact for integers below 2**53 nano-USD (about 9M USD). Capping
# one budget window at 1M USD keeps every sum the scripts compare exact.
MAX_LIMIT_NANO: Final = 1_000_000 * NANO_PER_USD

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_KEYS: Final = frozenset({"name", "scope", "limit_usd", "window", "alerts"})
_REQUIRED: Final = ("name", "scope", "limit_usd", "window")


_T = TypeVar("_T")


@dataclass(frozen=True)
class _Problem:
    """A validator's complaint, kept apart from valid results (which may be strings too)."""

    message: str


class BudgetConfigError(ValueError):
    """Invalid budget definitions; ``problems`` lists ``(json_path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))


@dataclass(frozen=True)
class BudgetDef:
    """One validated budget: ``limit_nano`` per ``window`` for each value of ``scope``."""

    name: str
    scope: str
    limit_nano: int
    window: WindowKind
    alerts: tuple[int, ...] = DEFAULT_ALERTS

    @property
    def field_path(self) -> tuple[str, ...]:
        """Context path whose value selects the counter; empty for the global scope."""
        if self.scope == "global":
            return ()
        return tuple(SCOPE_FIELDS.get(self.scope, self.scope).split("."))


def parse_budgets(raw: Sequence[Mapping[str, Any]], *, path: str = "$.budgets") -> tuple[BudgetDef, ...]:
    """Validate the ``budgets`` list; raise :class:`BudgetConfigError` naming every bad path."""
    problems: list[tuple[str, str]] = []
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise BudgetConfigError([(path, "must be a list of budget objects")])
    budgets: list[BudgetDef] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(raw):
        at = f"{path}[{i}]"
        name = item.get("name") if isinstance(item, Mapping) else None
        duplicate = False
        if isinstance(name, str):
            duplicate = name in seen
            if duplicate:
                problems.append((f"{at}.name", f"duplicate budget name {name!r} (first at {seen[name]})"))
            else:
                seen[name] = at
        budget = _parse_one(item, at, problems)
        if budget is not None and not duplicate:
            budgets.append(budget)
    if problems:
        raise BudgetConfigError(problems)
    return tuple(budgets)


def _parse_one(item: object, at: str, problems: list[tuple[str, str]]) -> BudgetDef | None:
    if not isinstance(item, Mapping):
        problems.append((at, "must be an object"))
        return None
    item = cast(Mapping[str, Any], item)
    before = len(problems)
    for key in sorted(set(item) - _KEYS, key=str):
        problems.append((f"{at}.{key}", f"unknown key (allowed: {', '.join(sorted(_KEYS))})"))
    for key in _REQUIRED:
        if key not in item:
            problems.append((f"{at}.{key}", "is required"))
    name = _check(_name, item, "name", at, problems)
    scope = _check(_scope, item, "scope", at, problems)
    limit = _check(_limit, item, "limit_usd", at, problems)
    window: WindowKind | None = _check(_window, item, "window", at, problems)
    alerts = _alerts(item.get("alerts", list(DEFAULT_ALERTS)))
    if isinstance(alerts, _Problem):
        problems.append((f"{at}.alerts", alerts.message))
    if name is None or scope is None or limit is None or window is None or isinstance(alerts, _Problem):
        return None
    if len(problems) > before:  # e.g. an unknown key next to valid fields
        return None
    return BudgetDef(name=name, scope=scope, limit_nano=limit, window=window, alerts=alerts)


def _check(
    validate: Callable[[object], _T | _Problem],
    item: Mapping[str, Any],
    key: str,
    at: str,
    problems: list[tuple[str, str]],
) -> _T | None:
    """Validate ``item[key]`` if present, recording a complaint under its JSON path."""
    if key not in item:
        return None
    result = validate(item[key])
    if isinstance(result, _Problem):
        problems.append((f"{at}.{key}", result.message))
        return None
    return result


def _name(value: object) -> str | _Problem:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        return _Problem("must be 1-64 characters of letters, digits, '_', '.', '-' (no ':')")
    return value


def _scope(value: object) -> str | _Problem:
    if not isinstance(value, str) or not _FIELD_PATH.fullmatch(value):
        return _Problem(
            "must be 'global', 'tenant', 'user' or a dotted context field path like 'tags.region'"
        )
    return value


def _limit(value: object) -> int | _Problem:
    if isinstance(value, float):
        return _Problem(
            f'must be a decimal string like "{value}" or an integer, not a float '
            "(floats cannot hold money exactly)"
        )
    if isinstance(value, bool) or not isinstance(value, str | int):
        return _Problem('must be a decimal string like "10.00" or an integer')
    try:
        usd = to_decimal(value)
    except MoneyError:
        return _Problem(f"not a decimal amount: {value!r}")
    nano = usd * NANO_PER_USD
    if nano != nano.to_integral_value():
        return _Problem("has more than 9 decimal places (budgets count whole nano-USD)")
    if usd <= 0:
        return _Problem("must be positive")
    if nano > MAX_LIMIT_NANO:
        return _Problem(f"must be at most {MAX_LIMIT_NANO // NANO_PER_USD} USD per window")
    return int(Decimal(nano))


def _window(value: object) -> WindowKind | _Problem:
    if value not in WINDOW_KINDS:
        return _Problem(f"must be one of {', '.join(WINDOW_KINDS)}")
    return value


def _alerts(value: object) -> tuple[int, ...] | _Problem:
    ok = isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1000 for v in value
    )
    if not ok:
        return _Problem("must be a list of integer percents between 1 and 1000, e.g. [50, 80, 100]")
    return tuple(sorted(set(cast(list[int], value))))
