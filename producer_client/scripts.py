"""Lua scripts shipped with the producer, loaded once and called by SHA."""

from __future__ import annotations

from importlib import resources


def load(name: str) -> str:
    return resources.files("producer_client").joinpath("scripts", name).read_text(encoding="utf-8")
