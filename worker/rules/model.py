"""The rules engine's value types: what a loaded rule is, and what a decision says.

Everything here is frozen: a ``RuleSet`` is shared by every concurrent job in a worker, so
nothing a caller gets back may alias mutable state inside it. Mappings that come from the
rules file (``provider``, ``params``) are handed out as read-only views; ``Decision.to_dict``
(or :func:`thaw`) gives plain JSON-ready copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from worker.rules.cascade import Accept
from worker.rules.condition import Condition
from worker.rules.experiments import Assignment, Variant
from worker.rules.trace import TraceEntry


def freeze(value: Any) -> Any:
    """Deep read-only copy of JSON data: dicts become mapping proxies, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain JSON copy of :func:`freeze` output (dicts and lists), safe to mutate or serialise."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class JobNeeds:
    """What the job itself asks of any model, whatever the rule says: ``select`` honours it.

    ``max_tokens`` is the job's own cap (it can only lower the rule's); None: no cap of its own.
    """

    tools: bool = False
    vision: bool = False
    structured_outputs: bool = False
    max_tokens: int | None = None


class Chooser(Protocol):
    """A rule's ``select``, compiled against one catalog (``worker.rules.select.Selector``)."""

    def choose(self, decision: Decision, prompt_tokens: int, needs: JobNeeds) -> Decision:
        """The decision with the selected chain, and the selection traced."""
        ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Rule:
    """A validated, compiled rule. ``model`` and ``fallbacks`` are resolved model ids.

    A rule with ``select`` has no model of its own (``model`` is ""): its chain is chosen per job.
    ``escalate`` holds resolved model ids, tried in order when an answer fails ``accept``.
    """

    name: str
    priority: int
    index: int  # position in the file: breaks priority ties
    condition: Condition
    always: bool  # the condition is structurally empty: this rule is a catch-all
    model: str
    fallbacks: tuple[str, ...]  # deduped, primary excluded
    max_tokens: int
    provider: Mapping[str, Any] | None
    params: Mapping[str, Any]
    tier: str | None = None  # the tier name the model came from, if any
    description: str = ""
    select: Chooser | None = None
    accept: Accept | None = None
    escalate: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """Which rule won and what it asks for; ``trace`` runs up to and including the winner.

    ``model`` is "" (and ``chain`` empty) only when a ``select`` left no candidate and the rule
    has no fallbacks of its own; ``excluded`` then says why, as (models, reason) groups.
    ``accept`` and ``escalate`` (model ids) configure the validated cascade the pipeline runs.
    """

    rule: str
    model: str
    fallbacks: tuple[str, ...]
    max_tokens: int
    provider: Mapping[str, Any] | None
    params: Mapping[str, Any]
    trace: tuple[TraceEntry, ...]
    rules_version: str
    prompt_tokens_est: int
    experiment: Assignment | None = None
    accept: Accept | None = None
    escalate: tuple[str, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()

    @property
    def chain(self) -> tuple[str, ...]:
        """Every model to try, in order: the primary, then the fallbacks."""
        return (self.model, *self.fallbacks) if self.model else ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (plain dicts and lists) for results, logs and the CLI."""
        return {
            "rule": self.rule,
            "model": self.model,
            "fallbacks": list(self.fallbacks),
            "chain": list(self.chain),
            "max_tokens": self.max_tokens,
            "provider": None if self.provider is None else thaw(self.provider),
            "params": thaw(self.params),
            "rules_version": self.rules_version,
            "prompt_tokens_est": self.prompt_tokens_est,
            "experiment": None if self.experiment is None else {
                "name": self.experiment.experiment, "variant": self.experiment.variant.name,
                "unit_hash": self.experiment.unit_hash, "unit": self.experiment.unit,
            },
            "trace": [{"rule": t.rule, "matched": t.matched, "why": t.why} for t in self.trace],
            "accept": None if self.accept is None else self.accept.to_dict(),
            "escalate": list(self.escalate),
            "excluded": [{"models": m, "reason": r} for m, r in self.excluded],
        }


# Fast constructors for the decision path. A frozen dataclass's ``__init__`` sets each field
# through ``object.__setattr__``, which costs more than evaluating the rules themselves (~0.3 µs
# per field); filling the instance ``__dict__`` directly builds the very same frozen object.
_new = object.__new__
_APPLIED_MAX = 256  # chains remembered per variant (a select rule's chain varies by job)


def new_decision(rule: Rule, trace: tuple[TraceEntry, ...], rules_version: str, tokens: int) -> Decision:
    decision = _new(Decision)
    fields = decision.__dict__
    fields["rule"] = rule.name
    fields["model"] = rule.model
    fields["fallbacks"] = rule.fallbacks
    fields["max_tokens"] = rule.max_tokens
    fields["provider"] = rule.provider
    fields["params"] = rule.params
    fields["trace"] = trace
    fields["rules_version"] = rules_version
    fields["prompt_tokens_est"] = tokens
    fields["experiment"] = None
    fields["accept"] = rule.accept
    fields["escalate"] = rule.escalate
    fields["excluded"] = ()
    return decision


def with_selection(
    decision: Decision, chain: tuple[str, ...], trace: tuple[TraceEntry, ...],
    excluded: tuple[tuple[str, str], ...],
) -> Decision:
    """The decision with a chain chosen by ``select`` (the rule's own fallbacks already appended)."""
    out = _new(Decision)
    fields = out.__dict__
    fields.update(decision.__dict__)
    fields["model"] = chain[0] if chain else ""
    fields["fallbacks"] = chain[1:]
    fields["trace"] = (*decision.trace, *trace)
    fields["excluded"] = excluded
    return out


def with_variant(decision: Decision, a: Assignment) -> Decision:
    """The decision as the assigned variant changes it (control: unchanged), traced."""
    v = a.variant
    key = (decision.model, decision.fallbacks)
    changes = v.applied.get(key)
    if changes is None:  # once per variant and chain: the rule's params and provider are fixed
        changes = _variant_changes(decision, v)
        if len(v.applied) < _APPLIED_MAX:
            v.applied[key] = changes
    out = _new(Decision)
    fields = out.__dict__
    fields.update(decision.__dict__)
    fields.update(changes)
    fields["trace"] = (*decision.trace, a.entry)
    fields["experiment"] = a
    return out


def _variant_changes(decision: Decision, v: Variant) -> dict[str, Any]:
    model = v.model or decision.model
    fallbacks = v.fallbacks if v.fallbacks is not None else decision.fallbacks
    changes: dict[str, Any] = {
        "model": model, "fallbacks": tuple(dict.fromkeys(m for m in fallbacks if m != model)),
    }
    if v.max_tokens is not None:
        changes["max_tokens"] = v.max_tokens
    if v.params is not None:
        changes["params"] = freeze({**decision.params, **v.params})
    if v.provider is not None:
        changes["provider"] = freeze({**(decision.provider or {}), **v.provider})
    return changes
