"""Dotted field paths (``tags.region``, ``budget.remaining``) and their lookup.

A path names a value in nested JSON objects. JSON ``null`` counts as missing: the wire
contract uses null for "not provided", and a rule must not match on a field nobody set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final


class _Missing:
    """Sentinel for an absent (or null) value; distinct from every JSON value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_SEGMENT = re.compile(r"[^.\s]+")


def parse_path(text: str) -> tuple[str, ...] | None:
    """Split ``"a.b.c"`` into segments; None if any segment is empty or holds whitespace."""
    parts = tuple(text.split("."))
    if all(_SEGMENT.fullmatch(p) for p in parts):
        return parts
    return None


def descend(value: Any, rest: tuple[str, ...]) -> Any:
    """Follow ``rest`` down through nested mappings; MISSING if a step is absent, null or not an object."""
    for segment in rest:
        if type(value) is dict or isinstance(value, Mapping):
            value = value.get(segment)
        else:
            return MISSING
        if value is None:
            return MISSING
    return value
