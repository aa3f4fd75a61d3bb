"""Checks for the pass-through objects a rule sends to OpenRouter: ``provider`` and ``params``.

``provider`` is OpenRouter's provider-preferences object, forwarded as is; its keys and their
JSON types are checked so a typo fails at load instead of being silently ignored upstream.
``params`` are extra request fields (temperature …); the fields routeq itself owns are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from worker.reserved import RESERVED_PARAMS
from worker.rules.problems import Problem, child_path
from worker.rules.values import is_number, kind, show


def _str_list(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(x, str) for x in v)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _number_or_object(v: Any) -> bool:
    return is_number(v) or isinstance(v, Mapping)


_PROVIDER_CHECKS: Final[Mapping[str, tuple[Callable[[Any], bool], str]]] = {
    "order": (_str_list, "a list of provider slugs"),
    "allow_fallbacks": (_bool, "true or false"),
    "require_parameters": (_bool, "true or false"),
    "data_collection": (lambda v: v in ("allow", "deny"), "'allow' or 'deny'"),
    "zdr": (_bool, "true or false"),
    "enforce_distillable_text": (_bool, "true or false"),
    "only": (_str_list, "a list of provider slugs"),
    "ignore": (_str_list, "a list of provider slugs"),
    "quantizations": (_str_list, "a list of quantization names"),
    "sort": (lambda v: isinstance(v, str | Mapping), "a string or an object"),
    "preferred_min_throughput": (_number_or_object, "a number or a percentile object"),
    "preferred_max_latency": (_number_or_object, "a number or a percentile object"),
    "max_price": (lambda v: isinstance(v, Mapping), "an object"),
}


def check_provider(value: Any, where: str, problems: list[Problem]) -> dict[str, Any] | None:
    """The provider object if valid (None values are passed through as OpenRouter allows)."""
    if not isinstance(value, Mapping):
        problems.append(Problem(where, f"expected an object, got {kind(value)}"))
        return None
    before = len(problems)
    allowed = ", ".join(_PROVIDER_CHECKS)
    for key, item in value.items():
        here = child_path(where, str(key))
        check = _PROVIDER_CHECKS.get(key)
        if check is None:
            problems.append(Problem(here, f"unknown provider preference {key!r} (expected one of {allowed})"))
        elif item is not None and not check[0](item):
            problems.append(Problem(here, f"expected {check[1]}, got {show(item)}"))
    return dict(value) if len(problems) == before else None


def check_params(value: Any, where: str, problems: list[Problem]) -> dict[str, Any] | None:
    """Extra request parameters if valid; keys routeq owns are refused with the reason."""
    if not isinstance(value, Mapping):
        problems.append(Problem(where, f"expected an object, got {kind(value)}"))
        return None
    before = len(problems)
    for key in value:
        if not isinstance(key, str):
            problems.append(Problem(where, f"parameter names must be strings, got {show(key)}"))
        elif key in RESERVED_PARAMS:
            problems.append(Problem(child_path(where, key), f"not allowed here: {RESERVED_PARAMS[key]}"))
    return dict(value) if len(problems) == before else None
