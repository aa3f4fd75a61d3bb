"""Reading typed settings from environment variables, with errors that name the variable."""

from __future__ import annotations

from collections.abc import Mapping


class SettingsError(ValueError):
    """An environment variable holds a value the worker cannot use."""


def env_int(env: Mapping[str, str], name: str, default: int, *, low: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None
    if value < low:
        raise SettingsError(f"{name}={raw!r}: must be >= {low}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, *, low: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if value < low:
        raise SettingsError(f"{name}={raw!r}: must be >= {low}")
    return value
