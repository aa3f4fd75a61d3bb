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


def set_models(base_url: str, config: dict[str, Any]) -> None:
    """What ``GET /models`` serves from now on: ``{"mode": "hostile"}``, ``{"body": {...}}`` …
    (worker/emulator/models_faults.py); ``reset`` goes back to the emulator's catalog."""
    httpx.put(control_url(base_url) + "/models", json=config, timeout=5).raise_for_status()


def models_served(base_url: str) -> int:
    """How many ``GET /models`` the emulator answered since its last reset."""
    resp = httpx.get(control_url(base_url) + "/models", timeout=5)
    resp.raise_for_status()
    served: int = resp.json()["served"]
    return served


def set_accuracy(base_url: str, accuracies: dict[str, float]) -> None:
    """Each model's chance of labelling a classification prompt right (the rest stays default)."""
    set_faults(base_url, {"models": {model: {"accuracy": a} for model, a in accuracies.items()}})


def simulated_score(prompt: str, content: str | None) -> float:
    """Feedback as a labeller who knows the answers gives it: 1 for the true label, else 0."""
    from worker.emulator.content import LABEL_PREFIX, true_label

    return 1.0 if content == LABEL_PREFIX + true_label(prompt) else 0.0
