"""What changes between two rules documents, per rule and per field, for a human to review.

A line diff of two JSON files buries the point (a rule moved, a key re-sorted); a review wants
"rule ``default``: ``fallbacks`` went from this to that". So named lists (``rules``, ``budgets``,
``experiments``, and lists of named objects inside them such as experiment ``variants``) are
matched by name, mappings (``tiers``, ``defaults``) by key, and every other top-level key is a
"setting". Order changes are reported too, because order matters: it breaks rule priority ties,
and it places experiment variants' bucket ranges (reordering variants re-assigns units).

Pure: works on parsed documents, valid or not (``routeq rules diff 3 ./candidate.json``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

NAMED_LISTS: Final = ("budgets", "rules", "experiments")
MAPPINGS: Final = ("tiers", "defaults")
SETTINGS: Final = "settings"
#: Output order of the sections.
SECTIONS: Final = (SETTINGS, "tiers", "defaults", "budgets", "rules", "experiments")
ORDER: Final = "(order)"  # the name of a section's order-change entry

Kind = Literal["added", "removed", "changed", "reordered"]
_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MARK: Final = {"added": "+", "removed": "-", "changed": "~", "reordered": "~"}


class _Absent:
    """Marks a side where the key or entry does not exist (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Final = _Absent()


@dataclass(frozen=True)
class Change:
    """One field of an entry: ``path`` inside it ("" = the whole value), old → new."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class EntryDiff:
    """One rule, budget, experiment, tier, default or setting that differs."""

    section: str
    name: str
    kind: Kind
    old: Any = ABSENT
    new: Any = ABSENT
    changes: tuple[Change, ...] = field(default=())


@dataclass(frozen=True)
class RulesDiff:
    entries: tuple[EntryDiff, ...]

    def __bool__(self) -> bool:
        return bool(self.entries)


def diff_rules(old: Mapping[str, Any], new: Mapping[str, Any]) -> RulesDiff:
    entries: list[EntryDiff] = []
    for section in SECTIONS:
        if section == SETTINGS:
            known = (*NAMED_LISTS, *MAPPINGS)
            a = {k: v for k, v in old.items() if k not in known}
            b = {k: v for k, v in new.items() if k not in known}
            entries.extend(_mapping_section(SETTINGS, a, b))
            continue
        empty: Any = [] if section in NAMED_LISTS else {}
        a, b = old.get(section, empty), new.get(section, empty)
        if a == b:
            continue
        if section in NAMED_LISTS and _listish(a) and _listish(b):
            entries.extend(_named_section(section, list(a), list(b)))
        elif section in MAPPINGS and isinstance(a, Mapping) and isinstance(b, Mapping):
            entries.extend(_mapping_section(section, a, b))
        else:  # a section of an unexpected shape (an invalid file): compare it whole
            entries.append(EntryDiff(section, "", "changed", a, b, (Change("", a, b),)))
    return RulesDiff(tuple(entries))


def _named_section(section: str, old: list[Any], new: list[Any]) -> Iterator[EntryDiff]:
    a, b = _by_name(old), _by_name(new)
    for name in _keys(a, b):
        if name not in a:
            yield EntryDiff(section, name, "added", new=b[name])
        elif name not in b:
            yield EntryDiff(section, name, "removed", old=a[name])
        elif a[name] != b[name]:
            yield EntryDiff(section, name, "changed", a[name], b[name], tuple(_changes(a[name], b[name], "")))
    reorder = _reorder(a, b)
    if reorder is not None:
        yield EntryDiff(section, ORDER, "reordered", reorder[0], reorder[1], (Change("", *reorder),))


def _mapping_section(section: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[EntryDiff]:
    for key in _keys(old, new):
        a, b = old.get(key, ABSENT), new.get(key, ABSENT)
        if a is ABSENT:
            yield EntryDiff(section, key, "added", new=b)
        elif b is ABSENT:
            yield EntryDiff(section, key, "removed", old=a)
        elif a != b:
            yield EntryDiff(section, key, "changed", a, b, tuple(_changes(a, b, "")))


def _changes(old: Any, new: Any, path: str) -> Iterator[Change]:
    """Leaf-level differences: into objects by key, into lists of named objects by name; any
    other list (fallbacks, ``in`` values) is one value, since its order is its meaning."""
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in _keys(old, new):
            a, b = old.get(key, ABSENT), new.get(key, ABSENT)
            yield from _changes(a, b, _join(path, key))
        return
    a_named, b_named = _named_items(old), _named_items(new)
    if a_named is not None and b_named is not None:
        for name in _keys(a_named, b_named):
            yield from _changes(a_named.get(name, ABSENT), b_named.get(name, ABSENT), f"{path}[{name}]")
        reorder = _reorder(a_named, b_named)
        if reorder is not None:
            yield Change(f"{path} {ORDER}", *reorder)
        return
    yield Change(path, old, new)


def _reorder(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str]] | None:
    """The common names in old and new order, if that order changed."""
    a = [n for n in old if n in new]
    b = [n for n in new if n in old]
    return (a, b) if a != b else None


def _by_name(items: Sequence[Any]) -> dict[str, Any]:
    """Entries keyed by their name; one without a (unique) name by its position, ``#3``."""
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, Mapping) else None
        key = name if isinstance(name, str) and name and name not in out else f"#{i}"
        out[key] = item
    return out


def _named_items(value: Any) -> dict[str, Any] | None:
    """A list whose items are objects with distinct string names, keyed by name; else None."""
    if not _listish(value) or not value:
        return None
    named = {item["name"]: item for item in value
             if isinstance(item, Mapping) and isinstance(item.get("name"), str)}
    return named if len(named) == len(value) else None


def _keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Keys of both, in ``a``'s order, then ``b``'s new ones in theirs."""
    return [*a, *(k for k in b if k not in a)]


def _join(path: str, key: Any) -> str:
    text = str(key)
    if _PLAIN_KEY.fullmatch(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{orjson.dumps(text).decode()}]"


def _listish(value: Any) -> bool:
    return isinstance(value, list | tuple)


# -- output ------------------------------------------------------------------------------------


def show_value(value: Any) -> str:
    """Compact JSON, or ``(absent)``."""
    if value is ABSENT:
        return "(absent)"
    return orjson.dumps(value, default=str).decode()


def render(diff: RulesDiff) -> list[str]:
    """Readable lines, grouped by section; ``["no changes"]`` for equal documents."""
    if not diff:
        return ["no changes"]
    lines: list[str] = []
    for section in SECTIONS:
        entries = [e for e in diff.entries if e.section == section]
        if not entries:
            continue
        lines.append(f"{section}:")
        for e in entries:
            lines.extend(_entry_lines(e))
    return lines


def _entry_lines(e: EntryDiff) -> list[str]:
    mark = _MARK[e.kind]
    label = e.name or e.section
    if e.kind == "reordered":
        return [f"  {mark} order: {_names(e.old)} → {_names(e.new)}"]
    if e.kind == "added":
        return [f"  {mark} {label}: {show_value(e.new)}"]
    if e.kind == "removed":
        return [f"  {mark} {label}" + ("" if e.section in NAMED_LISTS else f": {show_value(e.old)}")]
    if len(e.changes) == 1 and not e.changes[0].path:
        return [f"  {mark} {label}: {show_value(e.old)} → {show_value(e.new)}"]
    lines = [f"  {mark} {label}"]
    for c in e.changes:
        if c.path.endswith(ORDER):
            lines.append(f"      {c.path}: {_names(c.old)} → {_names(c.new)}")
        else:
            lines.append(f"      {c.path}: {show_value(c.old)} → {show_value(c.new)}")
    return lines


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def as_json(diff: RulesDiff) -> list[dict[str, Any]]:
    """The diff as JSON-ready dicts (an absent side is left out)."""

    def sides(old: Any, new: Any) -> dict[str, Any]:
        return {k: v for k, v in (("old", old), ("new", new)) if v is not ABSENT}

    return [
        {"section": e.section, "name": e.name, "kind": e.kind, **sides(e.old, e.new),
         "changes": [{"path": c.path, **sides(c.old, c.new)} for c in e.changes]}
        for e in diff.entries
    ]
