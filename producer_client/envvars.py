"""Typed settings from environment variables: the one reader, shared by producers and workers.

Every bad value is a :class:`SettingsError` that names the variable, the value and what was
expected, so ``ROUTEQ_MAX_JOBS=abc`` and ``OPENROUTER_TIMEOUT_S=abc`` fail the same clear way.
An unset or empty variable means the default.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name)
    return default if raw is None else raw


def env_int(env: Mapping[str, str], name: str, default: int, *, low: int | None = None) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None
    if low is not None and value < low:
        raise SettingsError(f"{name}={raw!r}: must be >= {low}")
    return value


def env_float(
    env: Mapping[str, str], name: str, default: float, *, low: float | None = None, above: float | None = None
) -> float:
    """A finite number; ``low`` is an inclusive bound, ``above`` an exclusive one."""
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r}: expected a finite number")
    if low is not None and value < low:
        raise SettingsError(f"{name}={raw!r}: must be >= {low:g}")
    if above is not None and value <= above:
        raise SettingsError(f"{name}={raw!r}: must be > {above:g}")
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r}: expected one of 1, 0, true, false, yes, no")


def env_choice(env: Mapping[str, str], name: str, default: str, choices: Collection[str]) -> str:
    """One of ``choices``, compared case-insensitively and returned as the choice is spelt."""
    raw = _raw(env, name)
    if raw is None:
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise SettingsError(f"{name}={raw!r}: expected one of {', '.join(choices)}")
