"""A decision's trace entries: one per rule evaluated (and one per experiment applied)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TraceEntry:
    """One evaluated rule: ``why`` is a true statement explaining the outcome."""

    rule: str
    matched: bool
    why: str


_new = object.__new__


def new_trace_entry(rule: str, matched: bool, why: str) -> TraceEntry:
    """A TraceEntry without the dataclass ``__init__`` (decisions make one per rule tried)."""
    entry = _new(TraceEntry)
    fields = entry.__dict__
    fields["rule"] = rule
    fields["matched"] = matched
    fields["why"] = why
    return entry
