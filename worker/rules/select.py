"""A rule's ``select``: choose its chain from the model catalog by price and capability.

::

    "select": {"from": ["*"], "needs": {"tools": true}, "min_context": "auto", "exclude_free": true,
               "max_price_per_mtok": {"prompt": "1.00", "completion": "4.00"},
               "order_by": "expected_cost", "top": 3}

- ``from`` (default ``["*"]``): model ids, tier names, author prefixes (``"anthropic/"``), ``"*"``.
- ``needs``: ``tools``, ``vision``, ``structured_outputs`` (true: required). The job's own needs
  (tools, images, a ``json_schema`` response format) always apply on top.
- ``min_context``: ``"auto"`` (default) or an integer minimum. The request itself (prompt
  estimate + ``max_tokens``) must always fit, so ``"auto"`` is that alone and an integer only
  raises the floor: a model that cannot hold the request would be dropped after the decision.
- ``exclude_free``: drop models whose every price is zero. ``max_price_per_mtok``: decimal
  strings, USD per million tokens (the catalog's prices are per token).
- ``order_by``: ``expected_cost`` (default: prompt estimate × prompt price + max_tokens ×
  completion price + request price), ``prompt_price``, or ``context_length`` (largest first).
  Ties go to the lower prompt price, then completion price, request price, larger context, and
  catalog order. ``top`` (default 3, at most 10): how many candidates the chain takes; the rule's
  own ``fallbacks`` follow them.

Variable-price routers are never candidates, and a model is "free" only when the catalog prices
it at zero. Compilation does everything that does not depend on the job: it resolves ``from``,
applies prices, ``exclude_free``, the rule's needs and a fixed ``min_context``, and prices in
exact integers. Per combination of job needs it keeps only the models that can ever rank in
the top ``top`` (a model beaten on every price and on context by ``top`` others never can), so
a decision looks at a few dozen models, not the whole catalog. The trace lists what was
considered, each exclusion with its reason (long lists cut to a few names and "+N more"), and
what was chosen with its expected cost.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Any, Final, Literal

from producer_client.money import MoneyError, to_decimal
from worker.catalog import Catalog, ModelInfo
from worker.rules.model import Decision, JobNeeds, with_selection
from worker.rules.problems import Problem, child_path
from worker.rules.trace import TraceEntry, new_trace_entry
from worker.rules.values import kind, show

OrderBy = Literal["expected_cost", "prompt_price", "context_length"]
ORDER_BY: Final = ("expected_cost", "prompt_price", "context_length")
KEYS: Final = ("from", "needs", "min_context", "exclude_free", "max_price_per_mtok", "order_by", "top")
NEEDS: Final = ("tools", "vision", "structured_outputs")
PRICE_KEYS: Final = ("prompt", "completion")
DEFAULT_TOP: Final = 3
MAX_TOP: Final = 10
SHOWN: Final = 3  # model ids named per trace line before "+N more"
PER_MTOK: Final = Decimal(1_000_000)
_AUTHOR: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/")
_SOURCES: Final = 'model ids, tiers, author prefixes ("anthropic/") or "*"'
_LACKS: Final = {"tools": "no tool support", "vision": "no image input",
                 "structured_outputs": "no structured outputs"}  # fmt: skip

Combo = tuple[bool, bool, bool]  # (tools, vision, structured_outputs) the job needs
#: (prompt, completion, request, context, position, id): prices as integers at the selector's scale.
_Row = tuple[int, int, int, int, int, str]


def supports(info: ModelInfo, need: str) -> bool:
    """Whether the catalog says ``info`` has capability ``need`` (one of :data:`NEEDS`)."""
    if need == "tools":
        return info.supports_tools
    if need == "vision":
        return info.supports_images
    return info.supports_structured_outputs


@dataclass(frozen=True, slots=True)
class _Pool:
    """The candidates for one combination of job needs."""

    kept: tuple[_Row, ...]  # those that can rank in the top, in position order
    contexts: tuple[int, ...]  # every candidate's context length, ascending (for counts)
    smallest: tuple[str, ...]  # ids by context length ascending, the first few
    size: int
    trace: tuple[TraceEntry, ...]  # exclusions by the job's needs
    excluded: tuple[tuple[str, str], ...]
    _too_small: dict[int, TraceEntry] = field(default_factory=dict, repr=False)

    def too_small(self, rule: str, count: int) -> TraceEntry:
        """The trace entry for the ``count`` candidates with the smallest context windows: the
        same for every job that excludes that many, so it is built once."""
        entry = self._too_small.get(count)
        if entry is None:
            entry = _exclusion(rule, count, _too_small(self.contexts, count), self.smallest[:count])
            self._too_small[count] = entry
        return entry


@dataclass(frozen=True, slots=True, eq=False)
class Selector:
    """A compiled ``select``: the static candidates of one (rules, catalog) pair."""

    rule: str
    order_by: OrderBy
    top: int
    candidates: tuple[ModelInfo, ...]  # after every static filter, in position order
    places: int  # prices are integers of 10**-places USD per token
    scale: int  # 10**places
    tag: str  # the trace's name for this selection: "<rule>/select"
    trace: tuple[TraceEntry, ...]  # what was considered and excluded at load
    excluded: tuple[tuple[str, str], ...]
    labels: Mapping[str, str] = field(repr=False)  # how the trace shows a chosen model (static orders)
    _rows: tuple[_Row, ...] = field(repr=False)
    _pools: dict[Combo, _Pool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pools", {})
        self._pool((False, False, False))  # the common case is ready before the first job

    def ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.candidates)

    def choose(self, decision: Decision, prompt_tokens: int, needs: JobNeeds) -> Decision:
        combo = (needs.tools, needs.vision, needs.structured_outputs)
        pool = self._pools.get(combo) or self._pool(combo)
        max_tokens = decision.max_tokens
        if needs.max_tokens is not None and needs.max_tokens < max_tokens:
            max_tokens = needs.max_tokens
        floor = prompt_tokens + max_tokens
        if self.order_by == "expected_cost":
            ranked = [(p * prompt_tokens + c * max_tokens + r, pos, mid)
                      for p, c, r, ctx, pos, mid in pool.kept if ctx >= floor]
            ranked.sort()
            del ranked[self.top :]
            chosen = tuple([mid for _, _, mid in ranked])
            unit, places = self.scale, self.places  # exact dollars: "$0.000181440"
            shown = ", ".join([f"{mid} ${cost // unit}.{cost % unit:0{places}d}" for cost, _, mid in ranked])
            by = f"expected cost (~{prompt_tokens} prompt + {max_tokens} completion tokens)"
        else:
            chosen = tuple(islice((row[5] for row in pool.kept if row[3] >= floor), self.top))
            shown = ", ".join([self.labels[mid] for mid in chosen])
            by = "prompt price" if self.order_by == "prompt_price" else "context length"
        trace = self.trace + pool.trace if pool.trace else self.trace
        excluded: tuple[tuple[str, str], ...] = ()
        small = bisect_left(pool.contexts, floor)
        if small:
            trace += (pool.too_small(self.rule, small),)
        if chosen:
            why = f"chose {len(chosen)} of {pool.size - small} by {by}: {shown}"
            trace += (new_trace_entry(self.tag, True, why),)
        else:
            trace += (new_trace_entry(self.tag, False, "no candidate left"),)
            if not decision.fallbacks:
                excluded = self.excluded + pool.excluded
                if small:
                    excluded += ((_names(pool.smallest[:small], small), _too_small(pool.contexts, small)),)
        own = decision.fallbacks
        chain = chosen + tuple([m for m in own if m not in chosen]) if own else chosen
        return with_selection(decision, chain, trace, excluded)

    def _pool(self, combo: Combo) -> _Pool:
        """Build (once) the candidates for a combination of job needs."""
        wanted = [need for need, on in zip(NEEDS, combo, strict=True) if on]
        rows: list[_Row] = []
        lacking: dict[str, list[str]] = {need: [] for need in wanted}
        for info, row in zip(self.candidates, self._rows, strict=True):
            missing = next((need for need in wanted if not supports(info, need)), None)
            if missing is None:
                rows.append(row)
            else:
                lacking[missing].append(info.id)
        groups = [(f"job needs {need}: {_LACKS[need]}", ids) for need, ids in lacking.items() if ids]
        by_context = sorted(rows, key=lambda row: (row[3], row[4]))
        pool = _Pool(
            kept=_prune(rows, _DOMINATES[self.order_by], self.top),
            contexts=tuple(row[3] for row in by_context),
            smallest=tuple(row[5] for row in by_context[:SHOWN]),
            size=len(rows),
            trace=tuple(_exclusion(self.rule, len(ids), reason, ids) for reason, ids in groups),
            excluded=tuple((_names(ids, len(ids)), reason) for reason, ids in groups),
        )
        self._pools[combo] = pool
        return pool


def needs_in(context: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]) -> JobNeeds:
    """A job's needs as far as the context and messages tell (the worker passes a full
    :class:`JobNeeds` built from the job, which also sees ``params.tools`` and response formats)."""
    if not isinstance(context, Mapping):
        context = {}
    images = any(
        isinstance(m, Mapping) and isinstance(m.get("content"), list)
        and any(isinstance(p, Mapping) and p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )
    return JobNeeds(
        tools=context.get("needs_tools") is True,
        vision=context.get("needs_vision") is True or images,
    )


def compile_select(
    value: Any,
    where: str,
    *,
    rule: str,
    catalog: Catalog | None,
    tiers: Mapping[str, str],
    allow_unknown: bool,
    problems: list[Problem],
) -> Selector | None:
    """Validate a rule's ``select`` and compile it against ``catalog``; None after any problem."""
    if not isinstance(value, Mapping):
        problems.append(Problem(where, f"expected an object, got {kind(value)}"))
        return None
    before = len(problems)
    for key in value:
        if key not in KEYS:
            message = f"unknown key {key!r} (expected one of {', '.join(KEYS)})"
            problems.append(Problem(child_path(where, str(key)), message))
    needs = _needs(value.get("needs", {}), child_path(where, "needs"), problems)
    min_context = _min_context(value.get("min_context", "auto"), child_path(where, "min_context"), problems)
    exclude_free = value.get("exclude_free", False)
    if not isinstance(exclude_free, bool):
        message = f"expected true or false, got {show(exclude_free)}"
        problems.append(Problem(child_path(where, "exclude_free"), message))
    caps = _caps(value.get("max_price_per_mtok", {}), child_path(where, "max_price_per_mtok"), problems)
    order_by = value.get("order_by", "expected_cost")
    if order_by not in ORDER_BY:
        message = f"expected one of {', '.join(ORDER_BY)}, got {show(order_by)}"
        problems.append(Problem(child_path(where, "order_by"), message))
    top = value.get("top", DEFAULT_TOP)
    if type(top) is not int or not 1 <= top <= MAX_TOP:
        message = f"expected an integer from 1 to {MAX_TOP}, got {show(top)}"
        problems.append(Problem(child_path(where, "top"), message))
    sources = value.get("from", ["*"])
    if catalog is None:
        problems.append(Problem(where, "select needs a model catalog (load the rules with catalog=...)"))
        return None
    considered = _resolve_from(sources, child_path(where, "from"), catalog, tiers, allow_unknown, problems)
    if len(problems) > before:
        return None
    filters = _Filters(needs, min_context, exclude_free is True, caps)
    kept, groups = filters.apply(considered)
    head = f"considered {len(considered)} of {len(catalog)} catalog models from {_show_from(sources)}"
    static = [new_trace_entry(rule + "/select", True, head)]
    static += [_exclusion(rule, len(ids), reason, ids) for reason, ids in groups]
    if not kept:
        summary = "; ".join(f"{len(ids)} {reason}" for reason, ids in groups) or "nothing to choose from"
        problems.append(Problem(where, f"no model in the catalog passes this select ({summary})"))
        return None
    places = max(_places(p) for m in kept for p in (m.prompt_price, m.completion_price, m.request_price))
    rows = sorted(
        (_row(m, i, places) for i, m in enumerate(kept)),
        key=_POSITION[order_by],
    )
    # Positions follow the order's tie-breaks, so a sort on (cost, position) is total.
    rows = [(p, c, r, ctx, pos, mid) for pos, (p, c, r, ctx, _, mid) in enumerate(rows)]
    by_id = {m.id: m for m in kept}
    labels = {m.id: f"{m.id} {_per_mtok(m.prompt_price)}" if order_by == "prompt_price"
              else f"{m.id} ({m.context_length})" for m in kept}
    return Selector(
        rule=rule,
        order_by=order_by,
        top=top,
        candidates=tuple(by_id[row[5]] for row in rows),
        places=places,
        scale=10**places,
        tag=rule + "/select",
        trace=tuple(static),
        excluded=tuple((_names(ids, len(ids)), reason) for reason, ids in groups),
        labels=labels,
        _rows=tuple(rows),
    )


@dataclass(frozen=True, slots=True)
class _Filters:
    """The static part of a select: what every job's candidates must pass."""

    needs: tuple[str, ...]
    min_context: int | None
    exclude_free: bool
    caps: Mapping[str, Decimal]

    def apply(self, models: Sequence[ModelInfo]) -> tuple[list[ModelInfo], list[tuple[str, list[str]]]]:
        """The models that pass, and the others grouped by the first reason they fail."""
        kept: list[ModelInfo] = []
        groups: dict[str, list[str]] = {}
        for info in models:
            reason = self.reason(info)
            if reason is None:
                kept.append(info)
            else:
                groups.setdefault(reason, []).append(info.id)
        return kept, list(groups.items())

    def reason(self, info: ModelInfo) -> str | None:
        if info.variable_price:
            return "variable price"
        if self.exclude_free and info.is_free:
            return "free"
        prices = {"prompt": info.prompt_price, "completion": info.completion_price}
        if any(prices[k] * PER_MTOK > cap for k, cap in self.caps.items()):
            limits = ", ".join(f"{k} ${cap}/M" for k, cap in self.caps.items())
            return f"over max price ({limits})"
        for need in self.needs:
            if not supports(info, need):
                return _LACKS[need]
        if self.min_context is not None and info.context_length < self.min_context:
            return f"context < {self.min_context}"
        return None


def _needs(value: Any, where: str, problems: list[Problem]) -> tuple[str, ...]:
    if not isinstance(value, Mapping):
        problems.append(Problem(where, f"expected an object such as {{\"tools\": true}}, got {kind(value)}"))
        return ()
    out = []
    for key, on in value.items():
        here = child_path(where, str(key))
        if key not in NEEDS:
            problems.append(Problem(here, f"unknown need {key!r} (expected one of {', '.join(NEEDS)})"))
        elif not isinstance(on, bool):
            problems.append(Problem(here, f"expected true or false, got {show(on)}"))
        elif on:
            out.append(key)
    return tuple(out)


def _min_context(value: Any, where: str, problems: list[Problem]) -> int | None:
    if value == "auto":
        return None
    if type(value) is int and value > 0:
        return value
    problems.append(Problem(where, f'expected "auto" or a positive integer, got {show(value)}'))
    return None


def _caps(value: Any, where: str, problems: list[Problem]) -> dict[str, Decimal]:
    """Price caps in USD per million tokens, exactly as written."""
    if not isinstance(value, Mapping):
        message = f'expected an object such as {{"prompt": "1.00", "completion": "4.00"}}, got {kind(value)}'
        problems.append(Problem(where, message))
        return {}
    caps: dict[str, Decimal] = {}
    for key, raw in value.items():
        here = child_path(where, str(key))
        if key not in PRICE_KEYS:
            problems.append(Problem(here, f"unknown price {key!r} (expected one of {', '.join(PRICE_KEYS)})"))
            continue
        if not isinstance(raw, str):
            message = f'expected a decimal string in USD per million tokens, such as "1.00", got {show(raw)}'
            problems.append(Problem(here, message))
            continue
        try:
            cap = to_decimal(raw.strip())
        except MoneyError:
            cap = Decimal(-1)
        if cap < 0 or not raw.strip():
            problems.append(Problem(here, f"expected a non-negative decimal amount, got {show(raw)}"))
            continue
        caps[key] = cap
    return caps


def _resolve_from(
    value: Any, where: str, catalog: Catalog, tiers: Mapping[str, str], allow_unknown: bool,
    problems: list[Problem],
) -> list[ModelInfo]:
    """The catalog models ``from`` names, in catalog order."""
    if not isinstance(value, list | tuple) or not value:
        message = f"expected a non-empty list of {_SOURCES}, got {show(value)}"
        problems.append(Problem(where, message))
        return []
    picked: set[str] = set()
    for i, entry in enumerate(value):
        here = child_path(where, i)
        if entry == "*":
            picked.update(catalog.ids())
        elif isinstance(entry, str) and entry.endswith("/") and _AUTHOR.fullmatch(entry):
            found = [m for m in catalog.ids() if m.startswith(entry)]
            if not found and not allow_unknown:
                problems.append(Problem(here, f"no model of author {entry!r} in the model catalog"))
            picked.update(found)
        elif isinstance(entry, str) and "/" in entry:
            if entry in catalog:
                picked.add(entry)
            elif not allow_unknown:
                problems.append(Problem(here, f"model {entry!r} is not in the model catalog "
                                              "(set \"allow_unknown_models\": true to allow it)"))
        elif isinstance(entry, str) and entry in tiers:
            if tiers[entry] in catalog:
                picked.add(tiers[entry])
            elif not allow_unknown:
                message = f"tier {entry!r} is {tiers[entry]!r}, which is not in the model catalog"
                problems.append(Problem(here, message))
        else:
            known = ", ".join(tiers) or "none defined in $.tiers"
            message = f"expected one of {_SOURCES} (tiers: {known}), got {show(entry)}"
            problems.append(Problem(here, message))
    listed = [m for m in catalog if m.id in picked]
    # Routers are named only by id (the catalog leaves them out of iteration): kept here so the
    # trace says why they are never chosen.
    unlisted = sorted(picked - {m.id for m in listed})
    others = [info for mid in unlisted if (info := catalog.get(mid)) is not None]
    return [*listed, *others]


def _prune(rows: list[_Row], dominates: Callable[[_Row, _Row], bool], top: int) -> tuple[_Row, ...]:
    """The rows that can rank in the first ``top`` for some job.

    ``a`` dominates ``b`` when, for every job where ``b`` is a candidate, ``a`` is one too and
    ranks before it; a row with ``top`` dominators never ranks in the first ``top``. Rows come
    in position order, so every dominator precedes what it dominates, and it is enough to count
    dominators among the rows kept so far (a pruned dominator's own ``top`` dominators dominate
    the row too, transitively).
    """
    kept: list[_Row] = []
    for b in sorted(rows, key=lambda row: row[4]):
        beaten = 0
        for a in kept:
            if dominates(a, b):
                beaten += 1
                if beaten >= top:
                    break
        if beaten < top:
            kept.append(b)
    return tuple(kept)


def _cheaper_everywhere(a: _Row, b: _Row) -> bool:
    return a[0] <= b[0] and a[1] <= b[1] and a[2] <= b[2] and a[3] >= b[3]


def _holds_as_much(a: _Row, b: _Row) -> bool:
    return a[3] >= b[3]


_DOMINATES: Final[Mapping[str, Callable[[_Row, _Row], bool]]] = {
    "expected_cost": _cheaper_everywhere,  # expected cost grows with every price and never with context
    "prompt_price": _holds_as_much,  # positions already follow prompt price
    "context_length": lambda a, b: True,  # positions already follow context, largest first
}
_POSITION: Final[Mapping[str, Callable[[_Row], tuple[int, ...]]]] = {
    "expected_cost": lambda r: (r[0], r[1], r[2], -r[3], r[4]),
    "prompt_price": lambda r: (r[0], r[1], r[2], -r[3], r[4]),
    "context_length": lambda r: (-r[3], r[0], r[1], r[2], r[4]),
}


def _row(info: ModelInfo, index: int, places: int) -> _Row:
    return (
        _scaled(info.prompt_price, places), _scaled(info.completion_price, places),
        _scaled(info.request_price, places), info.context_length, index, info.id,
    )


def _places(price: Decimal) -> int:
    exponent = price.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _scaled(price: Decimal, places: int) -> int:
    """The price as an exact integer count of 10**-places USD."""
    return int(price.scaleb(places))


def _per_mtok(price: Decimal) -> str:
    return f"${(price * PER_MTOK).normalize():f}/M"


def _too_small(contexts: Sequence[int], count: int) -> str:
    """Why the ``count`` smallest windows are out: the largest of them is below the request."""
    return f"context {contexts[count - 1]} or less, too small for the request"


def _exclusion(rule: str, count: int, reason: str, ids: Sequence[str]) -> TraceEntry:
    return new_trace_entry(rule + "/select", False, f"excluded {count}, {reason}: {_names(ids, count)}")


def _names(ids: Sequence[str], count: int) -> str:
    shown = ", ".join(ids[:SHOWN])
    return shown if count <= SHOWN else f"{shown} +{count - SHOWN} more"


def _show_from(sources: Any) -> str:
    items = [str(s) for s in sources][:6] if isinstance(sources, list | tuple) else [str(sources)]
    more = f" +{len(sources) - 6} more" if isinstance(sources, list | tuple) and len(sources) > 6 else ""
    return "[" + ", ".join(items) + more + "]"
