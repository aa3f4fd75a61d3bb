"""Is an answer acceptable? The check behind a rule's validated cascade, pure and synchronous.

A rule's ``accept`` (compiled by ``worker.rules.cascade``) says what an acceptable answer is;
the pipeline asks the cheap model first and escalates only the answers :func:`check` refuses.
How each kind reads an answer:

- ``labels``: the answer trimmed, case-insensitively, optionally prefixed ``label:`` (as the
  emulator answers), with surrounding quotes or backticks and one trailing period removed, must
  be one of the labels. ``"Label: Positive."`` is ``positive``.
- ``regex``: the trimmed answer must match the pattern whole (``re.fullmatch``); write
  ``.*word.*`` (with ``(?s)`` for multi-line answers) to look for something inside an answer.
- ``json_schema``: the trimmed answer, or the inside of one surrounding Markdown code fence,
  must parse as JSON and be valid against the schema.

:func:`response_format` gives the ``response_format`` request parameter that asks a model with
structured outputs for an answer in the schema.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from worker.catalog import ModelInfo
from worker.rules.cascade import Accept, JsonSchema, Labels, Regex, Schema
from worker.rules.model import thaw
from worker.rules.problems import child_path
from worker.rules.values import json_equal, show

_LABEL_PREFIX: Final = re.compile(r"label\s*:\s*", re.IGNORECASE)
_FENCE: Final = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```", re.DOTALL)
_QUOTES: Final = ("\"", "'", "`")
_SHOWN_LABELS: Final = 8


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether an answer is accepted, and a short true sentence saying why (for the result)."""

    ok: bool
    reason: str


def check(answer: str | None, accept: Accept) -> Verdict:
    """Judge one answer (the message content; None when there was none, e.g. a tool call)."""
    if answer is None or not answer.strip():
        return Verdict(False, "no answer" if answer is None else "empty answer")
    if isinstance(accept, Labels):
        return _labels(answer, accept)
    if isinstance(accept, Regex):
        return _regex(answer, accept)
    return _json(answer, accept)


def response_format(accept: Accept | None, model: ModelInfo | None) -> dict[str, Any] | None:
    """The ``response_format`` request parameter for ``model``: a JSON-schema format when the
    rule accepts by schema and the catalog says the model has structured outputs, else None
    (the answer is still checked against the schema on return)."""
    if not isinstance(accept, JsonSchema) or model is None or not model.supports_structured_outputs:
        return None
    return {
        "type": "json_schema",
        "json_schema": {"name": accept.name, "strict": accept.strict, "schema": thaw(accept.document)},
    }


def label_of(answer: str) -> str:
    """The label an answer names: trimmed, casefolded, without a ``label:`` prefix, quotes or a
    final period."""
    text = answer.strip()
    prefix = _LABEL_PREFIX.match(text)
    if prefix is not None:
        text = text[prefix.end():].strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        text = text[1:-1].strip()
    return text.casefold()


def _labels(answer: str, accept: Labels) -> Verdict:
    label = label_of(answer)
    if label in accept.folded:
        return Verdict(True, f"label {label!r}")
    known = ", ".join(accept.labels[:_SHOWN_LABELS]) + (" …" if len(accept.labels) > _SHOWN_LABELS else "")
    return Verdict(False, f"{show(label)} is not one of the labels ({known})")


def _regex(answer: str, accept: Regex) -> Verdict:
    if accept.pattern.fullmatch(answer.strip()):
        return Verdict(True, f"matches /{accept.pattern.pattern}/")
    return Verdict(False, f"{show(answer.strip())} does not match /{accept.pattern.pattern}/")


def _json(answer: str, accept: JsonSchema) -> Verdict:
    text = answer.strip()
    fenced = _FENCE.fullmatch(text)
    if fenced is not None:
        text = fenced.group(1)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Verdict(False, f"not JSON: {str(exc)[:120]}")
    problem = validate(value, accept.schema)
    return Verdict(True, "valid JSON for the schema") if problem is None else Verdict(False, problem)


def validate(value: Any, schema: Schema, where: str = "$") -> str | None:
    """The first reason ``value`` (parsed JSON) breaks ``schema``, located by JSON path; None if valid."""
    if schema.types is not None and not any(_is_type(value, t) for t in schema.types):
        return f"{where}: expected {' or '.join(sorted(schema.types))}, got {_json_type(value)}"
    if schema.enum is not None and not any(json_equal(value, option) for option in schema.enum):
        options = ", ".join(show(thaw(o)) for o in schema.enum[:_SHOWN_LABELS])
        return f"{where}: {show(value)} is not one of {options}"
    if isinstance(value, str):
        return _string(value, schema, where)
    if _is_type(value, "number"):
        return _number(value, schema, where)
    if isinstance(value, list):
        return _array(value, schema, where)
    if isinstance(value, Mapping):
        return _object(value, schema, where)
    return None


def _string(value: str, schema: Schema, where: str) -> str | None:
    if schema.min_length is not None and len(value) < schema.min_length:
        return f"{where}: shorter than {schema.min_length} characters"
    if schema.max_length is not None and len(value) > schema.max_length:
        return f"{where}: longer than {schema.max_length} characters"
    return None


def _number(value: float, schema: Schema, where: str) -> str | None:
    if schema.minimum is not None and value < schema.minimum:
        return f"{where}: {show(value)} is below the minimum {show(schema.minimum)}"
    if schema.maximum is not None and value > schema.maximum:
        return f"{where}: {show(value)} is above the maximum {show(schema.maximum)}"
    return None


def _array(value: list[Any], schema: Schema, where: str) -> str | None:
    if schema.min_items is not None and len(value) < schema.min_items:
        return f"{where}: fewer than {schema.min_items} items"
    if schema.max_items is not None and len(value) > schema.max_items:
        return f"{where}: more than {schema.max_items} items"
    if schema.items is not None:
        for i, item in enumerate(value):
            problem = validate(item, schema.items, child_path(where, i))
            if problem is not None:
                return problem
    return None


def _object(value: Mapping[str, Any], schema: Schema, where: str) -> str | None:
    for name in schema.required:
        if name not in value:
            return f"{where}: missing required property {name!r}"
    known = dict(schema.properties)
    for name, item in value.items():
        sub = known.get(name)
        if sub is None:
            if schema.additional is False:
                return f"{child_path(where, name)}: unexpected property"
            if schema.additional is True:
                continue
            sub = schema.additional
        problem = validate(item, sub, child_path(where, name))
        if problem is not None:
            return problem
    return None


def _is_type(value: Any, name: str) -> bool:
    """JSON Schema's types: integers include 1.0, booleans are never numbers."""
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, Mapping)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if name == "number":
        return True
    return isinstance(value, int) or (math.isfinite(value) and value.is_integer())


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__
