"""Three-valued outcomes and the JSON value helpers that conditions are built on.

A condition is TRUE, FALSE, or UNKNOWN when it cannot be evaluated (a missing field, a string
compared with a number). UNKNOWN follows Kleene logic through ``all``/``any``/``not``, so
``not`` of a missing field is still UNKNOWN, and a rule matches only on a definite TRUE.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from typing import Any, Final

#: Kleene truth values. Plain ``True``/``False``/``None`` rather than an Enum: outcomes are
#: hashed on every decision (trace memo), and Enum hashing runs Python code.
Truth = bool | None
TRUE: Final = True
FALSE: Final = False
UNKNOWN: Final = None

#: A truth value and a true sentence saying why (``"user_tier: 'pro' != 'free'"``).
Outcome = tuple[Truth, str]

_SHOW_LIMIT: Final = 60
_REPR: Final = reprlib.Repr()  # Python 3.11: limits are attributes, not arguments
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxstring = _REPR.maxother = _SHOW_LIMIT


def show(value: Any) -> str:
    """Short repr for traces, in time independent of the value's size.

    A huge context value must neither bloat every result document nor slow the decision, so
    strings are cut before ``repr`` and containers go through a depth- and length-limited repr.
    """
    t = type(value)
    if t is str:
        return repr(value) if len(value) <= _SHOW_LIMIT else repr(value[: _SHOW_LIMIT - 3]) + "..."
    if t is int and value.bit_length() > 128:  # repr of a huge int is slow, and refused past 4300 digits
        return f"<int of {value.bit_length()} bits>"
    text = repr(value) if t is float or t is bool or t is int or value is None else _REPR.repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def kind(value: Any) -> str:
    """JSON type name, for "cannot compare str 'x' with 3000" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def is_number(value: Any) -> bool:
    """int or float, never bool (True is not 1 in a routing rule)."""
    t = type(value)
    if t is int or t is float:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1``; ``1`` is ``1.0``; containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return a is None and b is None
