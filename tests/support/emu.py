"""Driving the emulator's control endpoints from tests."""

from __future__ import annotations

from typing import Any

import httpx


def control_url(base_url: str) -> str:
    return base_url.removesuffix("/api/v1") + "/_emulator"


def set_faults(base_url: str, faults: dict[str, Any]) -> None:
    httpx.put(control_url(base_url) + "/faults", json=faults, timeout=5).raise_for_status()


def reset(base_url: str) -> None:
    httpx.post(control_url(base_url) + "/reset", timeout=5).raise_for_status()


def stats(base_url: str) -> dict[str, Any]:
    resp = httpx.get(control_url(base_url) + "/stats", timeout=5)
    resp.raise_for_status()
    doc: dict[str, Any] = resp.json()
    return doc


def set_keys(base_url: str, keys: list[str]) -> None:
    """Accept exactly these API keys from now on (revokes the others)."""
    httpx.put(control_url(base_url) + "/account", json={"api_keys": keys}, timeout=5).raise_for_status()
