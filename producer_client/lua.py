"""Lua scripts shipped as package data: the one loader for producer and worker scripts.

A script may include another from the same folder with a line ``--! include name.lua``; the
included text replaces the line, so helpers are shared without runtime state between scripts.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_INCLUDE = re.compile(r"^--! include (\S+)$", re.MULTILINE)


@cache
def lua_script(package: str, name: str) -> str:
    """The source of ``<package>/scripts/<name>``, includes expanded."""
    text = resources.files(package).joinpath("scripts", name).read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: lua_script(package, m.group(1)), text)
