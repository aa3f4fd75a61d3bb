"""Compile a rule's ``when`` into one closure over a :class:`Scope`.

Grammar: a condition is an object whose keys are ``all`` (list of conditions), ``any`` (list),
``not`` (condition) or a dotted field path; several keys must all hold. A field takes a scalar
(``eq``), a list (``in``) or an operator object (``{"gte": 1, "lt": 5}``, all must hold).
Compilation reports every problem with its JSON path and never raises; evaluation never
raises either, and its ``why`` is always a true sentence about the outcome.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any, Final

from worker.rules.condition import Condition
from worker.rules.operators import BUILDERS, SEES_MISSING, Test
from worker.rules.paths import MISSING, descend, parse_path
from worker.rules.problems import Problem, child_path
from worker.rules.scope import BUILTIN_NAMES, Scope
from worker.rules.values import FALSE, TRUE, UNKNOWN, Outcome, kind, show

MAX_DEPTH: Final = 32
_SEEN_SIZE: Final = 256  # remembered outcomes per field test
_SEEN_STR_LEN: Final = 64  # longer strings are not remembered: the memo must stay small
ALWAYS: Final[Outcome] = (TRUE, "always")
_INVALID: Final[Outcome] = (UNKNOWN, "invalid condition")
_OPERATOR_LIST: Final = ", ".join(BUILDERS)


def always(scope: Scope) -> Outcome:
    """The catch-all condition: ``{}``."""
    return ALWAYS


def _invalid(scope: Scope) -> Outcome:
    return _INVALID  # placeholder for a part that failed to compile; its rule set is never built


def compile_condition(node: Any, where: str, problems: list[Problem]) -> tuple[Condition, bool]:
    """The compiled condition, and whether it always holds (a catch-all)."""
    return _compile(node, where, problems, 0)


def fields_read(node: Any, depth: int = 0) -> set[str]:
    """The first segments of every field path a (valid) condition reads: ``{"tags", "budget"}``."""
    if depth > MAX_DEPTH or not isinstance(node, Mapping):
        return set()
    out: set[str] = set()
    for key, value in node.items():
        if key in ("all", "any"):
            for item in value if isinstance(value, list | tuple) else ():
                out |= fields_read(item, depth + 1)
        elif key == "not":
            out |= fields_read(value, depth + 1)
        elif isinstance(key, str):
            out.add(key.split(".", 1)[0])
    return out


def _compile(node: Any, where: str, problems: list[Problem], depth: int) -> tuple[Condition, bool]:
    if depth > MAX_DEPTH:
        problems.append(Problem(where, f"conditions nested deeper than {MAX_DEPTH} levels"))
        return _invalid, False
    if not isinstance(node, Mapping):
        problems.append(Problem(where, f"expected a condition object, got {kind(node)}"))
        return _invalid, False
    parts: list[tuple[Condition, bool]] = []
    for key, value in node.items():
        if not isinstance(key, str):
            problems.append(Problem(where, f"condition keys must be strings, got {show(key)}"))
            continue
        here = child_path(where, key)
        if key == "all":
            parts.append(_all_of(value, here, problems, depth))
        elif key == "any":
            parts.append(_any_of(value, here, problems, depth))
        elif key == "not":
            parts.append(_not(value, here, problems, depth))
        else:
            parts.append((_field(key, value, here, problems), False))
    return _conjunction(parts)


def _conjunction(parts: list[tuple[Condition, bool]]) -> tuple[Condition, bool]:
    """All parts must hold; catch-all parts add nothing and are dropped."""
    live = [cond for cond, is_always in parts if not is_always]
    if not live:
        return always, True
    if len(live) == 1:
        return live[0], False
    return _and(tuple(live)), False


def _subconditions(
    value: Any, where: str, problems: list[Problem], depth: int
) -> list[tuple[Condition, bool]]:
    if not isinstance(value, list | tuple):
        problems.append(Problem(where, f"expected a list of conditions, got {kind(value)}"))
        return []
    return [_compile(item, child_path(where, i), problems, depth + 1) for i, item in enumerate(value)]


def _all_of(value: Any, where: str, problems: list[Problem], depth: int) -> tuple[Condition, bool]:
    return _conjunction(_subconditions(value, where, problems, depth))


def _any_of(value: Any, where: str, problems: list[Problem], depth: int) -> tuple[Condition, bool]:
    parts = _subconditions(value, where, problems, depth)
    if isinstance(value, list | tuple) and not value:
        problems.append(Problem(where, "an empty 'any' never matches"))
    if any(is_always for _, is_always in parts):
        return always, True
    if len(parts) == 1:
        return parts[0]
    return _or(tuple(cond for cond, _ in parts)), False


def _not(value: Any, where: str, problems: list[Problem], depth: int) -> tuple[Condition, bool]:
    inner, inner_always = _compile(value, where, problems, depth + 1)
    if inner_always:
        problems.append(Problem(where, "'not' of an always-true condition never matches"))

    def negation(scope: Scope) -> Outcome:
        state, why = inner(scope)
        if state is TRUE:
            return FALSE, why
        if state is FALSE:
            return TRUE, why
        return state, why

    return negation, False


def _and(conditions: tuple[Condition, ...]) -> Condition:
    """Kleene AND of conditions: FALSE beats UNKNOWN beats TRUE."""
    return _kleene_and(conditions)


def _kleene_and(parts: tuple[Callable[[Any], Outcome], ...]) -> Callable[[Any], Outcome]:
    """Kleene AND over checks of one argument (a scope, or a field's value): FALSE beats UNKNOWN
    beats TRUE, and a TRUE explains itself with every reason."""

    def conjunction(arg: Any) -> Outcome:
        reasons: list[str] = []
        unknown: Outcome | None = None
        for part in parts:
            outcome = part(arg)
            state = outcome[0]
            if state is TRUE:
                reasons.append(outcome[1])
            elif state is FALSE:
                return outcome
            elif unknown is None:
                unknown = outcome
        return unknown if unknown is not None else (TRUE, " and ".join(reasons))

    return conjunction


def _or(conditions: tuple[Condition, ...]) -> Condition:
    """Kleene OR: TRUE beats UNKNOWN beats FALSE; a FALSE explains itself with every reason."""

    def disjunction(scope: Scope) -> Outcome:
        reasons: list[str] = []
        unknown: Outcome | None = None
        for condition in conditions:
            outcome = condition(scope)
            state = outcome[0]
            if state is TRUE:
                return outcome
            if state is FALSE:
                reasons.append(outcome[1])
            elif unknown is None:
                unknown = outcome
        return unknown if unknown is not None else (FALSE, " and ".join(reasons))

    return disjunction


def _field(key: str, value: Any, where: str, problems: list[Problem]) -> Condition:
    path = parse_path(key)
    if path is None:
        problems.append(Problem(where, f"invalid field path {key!r}: segments are separated by single dots"))
        return _invalid
    ops = _operators(value, where, problems)
    sees_missing = any(op in SEES_MISSING for op, _, _ in ops)
    tests: list[Test] = []
    for op, operand, op_where in ops:
        test = BUILDERS[op](operand, key, op_where, problems)
        if test is not None:
            guard = sees_missing and op not in SEES_MISSING
            tests.append(_needs_value(test, key) if guard else test)
    if len(tests) != len(ops) or not tests:
        return _invalid
    test = tests[0] if len(tests) == 1 else _all_tests(tuple(tests))
    return _lookup(path, key, test, sees_missing)


def _operators(value: Any, where: str, problems: list[Problem]) -> list[tuple[str, Any, str]]:
    """(operator, operand, JSON path) triples, expanding the scalar and list shorthands."""
    if isinstance(value, list | tuple):
        return [("in", value, where)]
    if not isinstance(value, Mapping):
        return [("eq", value, where)]
    if not value:
        problems.append(Problem(where, f"empty operator object (expected one of {_OPERATOR_LIST})"))
        return []
    ops: list[tuple[str, Any, str]] = []
    for op, operand in value.items():
        here = child_path(where, str(op))
        if op in BUILDERS:
            ops.append((op, operand, here))
            continue
        message = f"unknown operator {op!r} (expected one of {_OPERATOR_LIST})"
        if not difflib.get_close_matches(str(op), BUILDERS, n=1):
            message += "; to test a nested field, use a dotted path such as 'tags.region'"
        problems.append(Problem(here, message))
    return ops if len(ops) == len(value) else []


def _needs_value(test: Test, display: str) -> Test:
    """Guard for an operator next to ``exists``: a missing field is UNKNOWN to it."""
    missing: Outcome = (UNKNOWN, f"{display}: missing")
    return lambda v: missing if v is MISSING else test(v)


def _all_tests(tests: tuple[Test, ...]) -> Test:
    """Several operators on one field (``{"gte": 1, "lt": 5}``): Kleene AND."""
    return _kleene_and(tests)


def _lookup(path: tuple[str, ...], display: str, test: Test, sees_missing: bool) -> Condition:
    """Fetch the field's value from the scope, then test it."""
    first, rest = path[0], path[1:]
    missing: Outcome = (UNKNOWN, f"{display}: missing")
    get = Scope.builtin if first in BUILTIN_NAMES else Scope.field

    if rest or sees_missing:

        def nested(scope: Scope) -> Outcome:
            value = get(scope, first)
            if rest and value is not MISSING:
                value = descend(value, rest)
            if value is MISSING and not sees_missing:
                return missing
            return test(value)

        return nested

    # The common case, a top-level field with one verdict per value. Categorical values
    # (tiers, task types, latency SLAs) repeat endlessly, so their outcome - a formatted
    # sentence - is remembered instead of re-formatted on every decision.
    # One table per exact type: 1, 1.0 and True are equal keys but not equal verdicts.
    seen: dict[type, dict[Any, Outcome]] = {str: {}, int: {}, bool: {}}

    def field(scope: Scope) -> Outcome:
        value = get(scope, first)
        kind = type(value)
        table = seen.get(kind)
        if table is None:
            return missing if value is MISSING else test(value)
        outcome = table.get(value)
        if outcome is None:
            outcome = test(value)
            if len(table) < _SEEN_SIZE and (kind is not str or len(value) <= _SEEN_STR_LEN):
                table[value] = outcome
        return outcome

    return field
