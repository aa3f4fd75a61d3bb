"""routeq's installed version (from the distribution's metadata)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def routeq_version() -> str:
    try:
        return version("routeq")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"
