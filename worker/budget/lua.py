"""The budget Lua scripts: ``scripts/*.lua`` package data, shared helpers prepended."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """Source of ``scripts/{name}.lua``, prefixed by ``scripts/common.lua``."""
    folder = resources.files("worker.budget").joinpath("scripts")
    common = folder.joinpath("common.lua").read_text(encoding="utf-8")
    return common + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
