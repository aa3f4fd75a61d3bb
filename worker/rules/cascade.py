"""A rule's validated cascade, as configured: what an acceptable answer is, and where to escalate.

::

    "accept": {"labels": ["positive", "negative", "neutral"]},
    "escalate": ["mid", "standard"]

``accept`` holds exactly one of ``labels`` (a list of strings), ``regex`` (a Python regular
expression the trimmed answer must match whole) or ``json_schema`` (an object in the JSON Schema
subset below). ``escalate`` lists tiers or model ids: the steps tried, in order, after the
rule's own decision when its answer is not accepted; it needs an ``accept``.

Only the configuration lives here: checking an answer is :mod:`worker.acceptance`, running the
steps is the pipeline's. Schemas are compiled once, at load, into :class:`Schema` nodes, so a
schema that uses a keyword we would silently ignore (``pattern``, ``oneOf`` …) is refused with
its JSON path instead of accepting answers it should not. Supported keywords: ``type``,
``properties``, ``required``, ``enum``, ``const``, ``items``, ``additionalProperties``,
``minLength``/``maxLength``, ``minItems``/``maxItems``, ``minimum``/``maximum``; the annotations
``title``, ``description``, ``default``, ``examples``, ``$schema``, ``$comment`` are allowed and
ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from worker.rules.problems import Problem, child_path
from worker.rules.values import is_finite_number, json_equal, kind, show

ACCEPT_KINDS: Final = ("labels", "regex", "json_schema")
JSON_TYPES: Final = ("object", "array", "string", "integer", "number", "boolean", "null")
_ANNOTATIONS: Final = frozenset({"title", "description", "default", "examples", "$schema", "$comment"})
_KEYWORDS: Final = (
    "type", "properties", "required", "enum", "const", "items", "additionalProperties",
    "minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum",
)  # fmt: skip
MAX_SCHEMA_DEPTH: Final = 32
_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class Schema:
    """One compiled schema node; ``None`` means "no constraint" throughout."""

    types: frozenset[str] | None = None
    properties: tuple[tuple[str, Schema], ...] = ()
    required: tuple[str, ...] = ()
    enum: tuple[Any, ...] | None = None
    items: Schema | None = None
    additional: bool | Schema = True  # True: any extra property; False: none
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None


@dataclass(frozen=True, slots=True)
class Labels:
    """The answer must be one of these labels (compared trimmed and case-insensitively)."""

    labels: tuple[str, ...]  # as written
    folded: frozenset[str]  # casefolded, for the check

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels)}


@dataclass(frozen=True, slots=True)
class Regex:
    """The trimmed answer must match ``pattern`` whole (``re.fullmatch``)."""

    pattern: re.Pattern[str]

    def to_dict(self) -> dict[str, Any]:
        return {"regex": self.pattern.pattern}


@dataclass(frozen=True, slots=True)
class JsonSchema:
    """The answer must be JSON valid against ``schema``.

    ``document`` is the schema as written (sent upstream as ``response_format`` to models that
    support structured outputs); ``strict`` says whether it meets OpenAI's strict mode (every
    object closed and every property required), so it can be sent with ``"strict": true``.
    """

    schema: Schema
    document: Mapping[str, Any]
    name: str
    strict: bool

    def to_dict(self) -> dict[str, Any]:
        return {"json_schema": _plain(self.document)}


Accept = Labels | Regex | JsonSchema


def compile_accept(value: Any, where: str, name: str, problems: list[Problem]) -> Accept | None:
    """A rule's ``accept`` (``where`` is its JSON path; ``name`` names the response format)."""
    if not isinstance(value, Mapping) or len(value) != 1:
        message = f"expected an object with exactly one of {', '.join(ACCEPT_KINDS)}, got {show(value)}"
        problems.append(Problem(where, message))
        return None
    ((key, raw),) = value.items()
    here = child_path(where, str(key))
    if key == "labels":
        return _labels(raw, here, problems)
    if key == "regex":
        return _regex(raw, here, problems)
    if key == "json_schema":
        before = len(problems)
        schema = compile_schema(raw, here, problems)
        if schema is None or len(problems) > before:
            return None
        return JsonSchema(schema, _frozen(raw), _format_name(name), _is_strict(raw))
    message = f"unknown key {key!r} (expected one of {', '.join(ACCEPT_KINDS)})"
    problems.append(Problem(here, message))
    return None


def compile_escalate(
    value: Any,
    where: str,
    tiers: Mapping[str, str],
    problems: list[Problem],
    *,
    is_model_id: Callable[[Any], bool],
    known: Callable[[str], str | None],
    own: str | None = None,
) -> tuple[str, ...]:
    """Resolved model ids of ``escalate``. ``known(model)`` returns a problem message for a model
    the catalog does not have (or None), so this module needs no catalog of its own; ``own`` is
    the rule's own model, which a step may not repeat."""
    if not isinstance(value, list | tuple) or not value:
        problems.append(Problem(where, f"expected a non-empty list of tiers or model ids, got {show(value)}"))
        return ()
    steps: list[str] = []
    for i, entry in enumerate(value):
        here = child_path(where, i)
        if isinstance(entry, str) and "/" in entry:
            if not is_model_id(entry):
                problems.append(Problem(here, f"not a model id (author/slug[:variant]): {show(entry)}"))
                continue
            model = entry
        elif isinstance(entry, str) and entry in tiers:
            model = tiers[entry]
        else:
            known_tiers = ", ".join(tiers) or "none defined in $.tiers"
            problems.append(Problem(here, f"unknown tier {show(entry)} (known: {known_tiers})"))
            continue
        unknown = known(model)
        if unknown is not None:
            problems.append(Problem(here, unknown))
        elif model in steps:
            problems.append(Problem(here, f"{model!r} is already step {steps.index(model) + 1}"))
        elif model == own:
            problems.append(Problem(here, f"{model!r} is the rule's own model: it would be asked again"))
        else:
            steps.append(model)
    return tuple(steps)


def compile_schema(value: Any, where: str, problems: list[Problem], depth: int = 0) -> Schema | None:
    """The compiled node, or None (with problems) if it uses anything outside the subset."""
    if depth > MAX_SCHEMA_DEPTH:
        problems.append(Problem(where, f"schema nested deeper than {MAX_SCHEMA_DEPTH} levels"))
        return None
    if not isinstance(value, Mapping):
        problems.append(Problem(where, f"expected a schema object, got {kind(value)}"))
        return None
    before = len(problems)
    for key in value:
        if key not in _KEYWORDS and key not in _ANNOTATIONS:
            message = f"unsupported schema keyword {key!r} (supported: {', '.join(_KEYWORDS)})"
            problems.append(Problem(child_path(where, str(key)), message))
    fields: dict[str, Any] = {}
    if "type" in value:
        fields["types"] = _types(value["type"], child_path(where, "type"), problems)
    if "properties" in value:
        here = child_path(where, "properties")
        fields["properties"] = _properties(value["properties"], here, problems, depth)
    if "required" in value:
        fields["required"] = _required(value["required"], child_path(where, "required"), problems)
    if "enum" in value:
        fields["enum"] = _enum(value["enum"], child_path(where, "enum"), problems)
    if "const" in value:
        if "enum" in value:
            problems.append(Problem(child_path(where, "const"), 'give "enum" or "const", not both'))
        else:
            fields["enum"] = _enum([value["const"]], child_path(where, "const"), problems)
    if "items" in value:
        fields["items"] = compile_schema(value["items"], child_path(where, "items"), problems, depth + 1)
    if "additionalProperties" in value:
        extra = value["additionalProperties"]
        here = child_path(where, "additionalProperties")
        if isinstance(extra, bool):
            fields["additional"] = extra
        else:
            fields["additional"] = compile_schema(extra, here, problems, depth + 1)
    for low, high, lo_key, hi_key in (
        ("min_length", "max_length", "minLength", "maxLength"),
        ("min_items", "max_items", "minItems", "maxItems"),
    ):
        fields[low] = _count(value, lo_key, where, problems)
        fields[high] = _count(value, hi_key, where, problems)
        _ordered(fields[low], fields[high], child_path(where, hi_key), problems)
    fields["minimum"] = _bound(value, "minimum", where, problems)
    fields["maximum"] = _bound(value, "maximum", where, problems)
    _ordered(fields["minimum"], fields["maximum"], child_path(where, "maximum"), problems)
    if len(problems) > before:
        return None
    return Schema(**fields)


def _types(value: Any, where: str, problems: list[Problem]) -> frozenset[str] | None:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not names or not all(n in JSON_TYPES for n in names):
        problems.append(Problem(where, f"expected a type or a list of types among {', '.join(JSON_TYPES)}, "
                                       f"got {show(value)}"))
        return None
    return frozenset(names)


def _properties(
    value: Any, where: str, problems: list[Problem], depth: int
) -> tuple[tuple[str, Schema], ...]:
    if not isinstance(value, Mapping):
        problems.append(Problem(where, f"expected an object of property schemas, got {kind(value)}"))
        return ()
    out = []
    for name, sub in value.items():
        schema = compile_schema(sub, child_path(where, str(name)), problems, depth + 1)
        if schema is not None:
            out.append((str(name), schema))
    return tuple(out)


def _required(value: Any, where: str, problems: list[Problem]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(n, str) for n in value):
        problems.append(Problem(where, f"expected a list of property names, got {show(value)}"))
        return ()
    if len(set(value)) != len(value):
        problems.append(Problem(where, "property names must be unique"))
    return tuple(value)


def _enum(value: Any, where: str, problems: list[Problem]) -> tuple[Any, ...] | None:
    if not isinstance(value, list | tuple) or not value:
        problems.append(Problem(where, f"expected a non-empty list of values, got {show(value)}"))
        return None
    out: list[Any] = []
    for i, item in enumerate(value):
        if not _is_json(item):
            problems.append(Problem(child_path(where, i), f"not a JSON value: {show(item)}"))
        elif any(json_equal(item, seen) for seen in out):
            problems.append(Problem(child_path(where, i), f"duplicate value {show(item)}"))
        else:
            out.append(_frozen(item))
    return tuple(out)


def _count(value: Mapping[str, Any], key: str, where: str, problems: list[Problem]) -> int | None:
    if key not in value:
        return None
    n = value[key]
    if type(n) is int and n >= 0:
        return n
    problems.append(Problem(child_path(where, key), f"expected a non-negative integer, got {show(n)}"))
    return None


def _bound(value: Mapping[str, Any], key: str, where: str, problems: list[Problem]) -> int | float | None:
    if key not in value:
        return None
    n = value[key]
    if is_finite_number(n):
        return n  # type: ignore[no-any-return]
    problems.append(Problem(child_path(where, key), f"expected a number, got {show(n)}"))
    return None


def _ordered(low: float | None, high: float | None, where: str, problems: list[Problem]) -> None:
    if low is not None and high is not None and low > high:
        problems.append(Problem(where, f"{show(high)} is below the minimum {show(low)}: nothing can match"))


def _regex(value: Any, where: str, problems: list[Problem]) -> Regex | None:
    if not isinstance(value, str) or not value:
        problems.append(Problem(where, f"expected a non-empty regular expression string, got {show(value)}"))
        return None
    try:
        return Regex(re.compile(value))
    except re.error as exc:
        problems.append(Problem(where, f"invalid regular expression: {exc}"))
        return None


def _labels(value: Any, where: str, problems: list[Problem]) -> Labels | None:
    if not isinstance(value, list | tuple) or not value:
        problems.append(Problem(where, f"expected a non-empty list of labels, got {show(value)}"))
        return None
    before = len(problems)
    seen: dict[str, int] = {}
    for i, label in enumerate(value):
        here = child_path(where, i)
        if not isinstance(label, str) or not label.strip():
            problems.append(Problem(here, f"expected a non-empty string, got {show(label)}"))
            continue
        folded = label.strip().casefold()
        if folded in seen:
            message = f"duplicate label {label!r} (same as [{seen[folded]}], ignoring case)"
            problems.append(Problem(here, message))
        seen.setdefault(folded, i)
    if len(problems) > before:
        return None
    return Labels(tuple(value), frozenset(seen))


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | bool) or is_finite_number(value):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _is_strict(doc: Mapping[str, Any]) -> bool:
    """OpenAI strict mode: the root is an object, and every object lists all its properties as
    required and forbids others."""
    return doc.get("type") == "object" and _strict_node(doc)


def _strict_node(node: Any) -> bool:
    if not isinstance(node, Mapping):
        return True
    props = node.get("properties")
    types = node.get("type")
    is_object = types == "object" or (isinstance(types, list | tuple) and "object" in types)
    if is_object or props is not None:
        props = props if isinstance(props, Mapping) else {}
        required = node.get("required", ())
        if node.get("additionalProperties") is not False or set(required) != set(props):
            return False
    children = list(props.values()) if isinstance(props, Mapping) else []
    if isinstance(node.get("items"), Mapping):
        children.append(node["items"])
    return all(_strict_node(child) for child in children)


def _format_name(rule_name: str) -> str:
    """A ``json_schema.name`` OpenAI accepts: [A-Za-z0-9_-], at most 64 characters."""
    return (_NAME_CHARS.sub("_", rule_name) or "answer")[:64]


def _frozen(value: Any) -> Any:
    """Deep read-only copy (as ``worker.rules.model.freeze``, which imports this module)."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
