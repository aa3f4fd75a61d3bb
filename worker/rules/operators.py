"""Field operators: each is validated and specialised once, at load, into a small closure.

A test takes the field's value (``MISSING`` only reaches ``exists``) and returns an
:data:`Outcome`. Operands are checked here, so a test never meets a malformed operand and a
decision never pays for validation. Ordering operators compare two numbers or two strings;
anything else (including bool, which Python would happily treat as 0/1) is UNKNOWN.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from worker.rules.paths import MISSING
from worker.rules.problems import Problem
from worker.rules.values import (
    FALSE,
    TRUE,
    UNKNOWN,
    Outcome,
    is_finite_number,
    is_number,
    json_equal,
    kind,
    show,
)

Test = Callable[[Any], Outcome]
_Builder = Callable[[Any, str, str, list[Problem]], Test | None]


def _json_operand(operand: Any, where: str, problems: list[Problem]) -> bool:
    """A non-null JSON value: null can never match, because a null field counts as missing."""
    if operand is None:
        problems.append(
            Problem(where, 'null never matches (a null field counts as missing); use {"exists": false}')
        )
        return False
    if isinstance(operand, str | bool) or is_finite_number(operand):
        return True
    if isinstance(operand, list | tuple):
        return all(_json_operand(x, f"{where}[{i}]", problems) for i, x in enumerate(operand))
    if isinstance(operand, Mapping):
        if not all(isinstance(k, str) for k in operand):
            problems.append(Problem(where, "object keys must be strings"))
            return False
        return all(_json_operand(v, where, problems) for v in operand.values())
    problems.append(Problem(where, f"not a JSON value: {show(operand)}"))
    return False


def _same_as(operand: Any) -> Callable[[Any], bool]:
    """An equality predicate specialised to the operand's type (the common cases skip recursion)."""
    if isinstance(operand, bool):
        return lambda v: v is operand
    if isinstance(operand, str):
        return lambda v: isinstance(v, str) and v == operand
    if is_number(operand):
        return lambda v: is_number(v) and v == operand
    return lambda v: json_equal(v, operand)


def _eq(operand: Any, d: str, where: str, problems: list[Problem]) -> Test | None:
    if not _json_operand(operand, where, problems):
        return None
    same, s = _same_as(operand), show(operand)
    hit = (TRUE, f"{d} == {s}")
    return lambda v: hit if same(v) else (FALSE, f"{d}: {show(v)} != {s}")


def _ne(operand: Any, d: str, where: str, problems: list[Problem]) -> Test | None:
    if not _json_operand(operand, where, problems):
        return None
    same, s = _same_as(operand), show(operand)
    miss = (FALSE, f"{d} == {s}")
    return lambda v: miss if same(v) else (TRUE, f"{d}: {show(v)} != {s}")


def _member_of(operand: Any, where: str, problems: list[Problem]) -> Callable[[Any], bool] | None:
    if not isinstance(operand, list | tuple) or not operand:
        problems.append(Problem(where, f"expected a non-empty list, got {show(operand)}"))
        return None
    if not _json_operand(operand, where, problems):
        return None
    if all(isinstance(m, str) for m in operand):
        members = frozenset(operand)
        return lambda v: isinstance(v, str) and v in members
    tests = tuple(_same_as(m) for m in operand)
    return lambda v: any(t(v) for t in tests)


def _in(operand: Any, d: str, where: str, problems: list[Problem]) -> Test | None:
    member = _member_of(operand, where, problems)
    if member is None:
        return None
    s = show(list(operand))
    return lambda v: (TRUE, f"{d}: {show(v)} in {s}") if member(v) else (FALSE, f"{d}: {show(v)} not in {s}")


def _not_in(operand: Any, d: str, where: str, problems: list[Problem]) -> Test | None:
    member = _member_of(operand, where, problems)
    if member is None:
        return None
    s = show(list(operand))
    return lambda v: (FALSE, f"{d}: {show(v)} in {s}") if member(v) else (TRUE, f"{d}: {show(v)} not in {s}")


def _comparable_to(operand: Any) -> Callable[[Any], bool]:
    """Numbers compare with numbers (NaN with nothing), strings with strings."""
    if isinstance(operand, str):
        return lambda v: isinstance(v, str)
    return lambda v: is_number(v) and v == v


def _orderable(operand: Any, where: str, problems: list[Problem]) -> bool:
    if isinstance(operand, str) or is_finite_number(operand):
        return True
    problems.append(Problem(where, f"expected a number or a string, got {kind(operand)} {show(operand)}"))
    return False


def _ordering(symbol: str, negation: str, compare: Callable[[Any, Any], bool]) -> _Builder:
    def build(operand: Any, d: str, where: str, problems: list[Problem]) -> Test | None:
        if not _orderable(operand, where, problems):
            return None
        ok, s = _comparable_to(operand), show(operand)

        def test(v: Any) -> Outcome:
            if not ok(v):
                return UNKNOWN, f"{d}: cannot compare {kind(v)} {show(v)} with {s}"
            if compare(v, operand):
                return TRUE, f"{d}: {show(v)} {symbol} {s}"
            return FALSE, f"{d}: {show(v)} {negation} {s}"

        return test

    return build


def _between(operand: Any, d: str, where: str, problems: list[Problem]) -> Test | None:
    if not isinstance(operand, list | tuple) or len(operand) != 2:
        problems.append(Problem(where, f"expected [low, high] (2 items), got {show(operand)}"))
        return None
    lo, hi = operand
    if not (_orderable(lo, f"{where}[0]", problems) and _orderable(hi, f"{where}[1]", problems)):
        return None
    if isinstance(lo, str) != isinstance(hi, str):
        problems.append(Problem(where, f"low and high must both be numbers or both strings: {show(operand)}"))
        return None
    if lo > hi:
        problems.append(Problem(where, f"low {show(lo)} is above high {show(hi)}: nothing can match"))
        return None
    ok, s = _comparable_to(lo), show([lo, hi])

    def test(v: Any) -> Outcome:
        if not ok(v):
            return UNKNOWN, f"{d}: cannot compare {kind(v)} {show(v)} with {s}"
        if lo <= v <= hi:
            return TRUE, f"{d}: {show(v)} between {s}"
        return FALSE, f"{d}: {show(v)} not between {s}"

    return test


def _regex(operand: Any, d: str, where: str, problems: list[Problem]) -> Test | None:
    if not isinstance(operand, str):
        problems.append(Problem(where, f"expected a regular expression string, got {show(operand)}"))
        return None
    try:
        search = re.compile(operand).search
    except re.error as exc:
        problems.append(Problem(where, f"invalid regular expression {operand!r}: {exc}"))
        return None
    s = show(operand)

    def test(v: Any) -> Outcome:
        if not isinstance(v, str):
            return UNKNOWN, f"{d}: cannot match {kind(v)} {show(v)} against regex {s}"
        if search(v):
            return TRUE, f"{d}: {show(v)} matches {s}"
        return FALSE, f"{d}: {show(v)} does not match {s}"

    return test


def _contains(operand: Any, d: str, where: str, problems: list[Problem]) -> Test | None:
    if not _json_operand(operand, where, problems):
        return None
    same, s, needle_is_str = _same_as(operand), show(operand), isinstance(operand, str)

    def test(v: Any) -> Outcome:
        if isinstance(v, str | Mapping):
            if not needle_is_str:
                return UNKNOWN, f"{d}: cannot look for {kind(operand)} {s} in {kind(v)} {show(v)}"
            hit = operand in v
        elif isinstance(v, list | tuple):
            hit = any(same(x) for x in v)
        else:
            return UNKNOWN, f"{d}: cannot look for {s} in {kind(v)} {show(v)}"
        if hit:
            return TRUE, f"{d}: {show(v)} contains {s}"
        return FALSE, f"{d}: {show(v)} does not contain {s}"

    return test


def _exists(operand: Any, d: str, where: str, problems: list[Problem]) -> Test | None:
    if not isinstance(operand, bool):
        problems.append(Problem(where, f"expected true or false, got {show(operand)}"))
        return None
    present, absent = f"{d}: present", f"{d}: missing"

    def test(v: Any) -> Outcome:
        if v is MISSING:
            return (FALSE if operand else TRUE), absent
        return (TRUE if operand else FALSE), present

    return test


BUILDERS: Final[Mapping[str, _Builder]] = {
    "eq": _eq,
    "ne": _ne,
    "in": _in,
    "not_in": _not_in,
    "lt": _ordering("<", ">=", operator.lt),
    "lte": _ordering("<=", ">", operator.le),
    "gt": _ordering(">", "<=", operator.gt),
    "gte": _ordering(">=", "<", operator.ge),
    "between": _between,
    "regex": _regex,
    "contains": _contains,
    "exists": _exists,
}

#: Operators that give a verdict on a missing field; every other one makes it UNKNOWN.
SEES_MISSING: Final = frozenset({"exists"})
