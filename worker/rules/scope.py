"""What a condition can see during one decision: computed values first, then the context.

Computed values shadow context fields of the same name: the caller's ``computed`` mapping
(budget state and the like), then the built-ins:

- ``prompt_tokens_est``;
- ``hour`` (0-23) and ``weekday`` (an int, 0 = Monday ... 6 = Sunday, as ``datetime.weekday``;
  write ``{"weekday": {"lt": 5}}`` for working days), both in the rules' timezone;
- ``complexity``: the model-routing seed's ``classify_complexity`` of the last user message
  (``budget``, ``mid``, ``standard`` or ``premium``); missing when the decision has no messages;
- ``task_type_source``: where ``task_type`` came from: ``context`` (the producer gave it),
  ``classifier`` (the worker filled it in) or ``none``. The worker passes it; a caller that does
  not gets ``context`` when the context holds a task type other than "auto", else ``none``.

Built-ins are computed lazily, at most once per decision, so rules that never mention the
clock or the complexity never pay for a timezone conversion or a regular expression.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from worker.classify import classify_complexity, last_user_text
from worker.rules.paths import MISSING
from worker.tokens import estimate_prompt_tokens

_EMPTY: Final[Mapping[str, Any]] = {}


#: Larger estimates are held at this: no model reads more, and the count stays a 32-bit JSON int.
MAX_TOKENS: Final = 2**31 - 1


def _valid_token_count(value: Any) -> int | None:
    """A caller-supplied token estimate, if it is a usable count (floats round up; capped)."""
    if type(value) is int and value >= 0:
        return min(value, MAX_TOKENS)
    if type(value) is float and math.isfinite(value) and value >= 0:
        return min(math.ceil(value), MAX_TOKENS)
    return None


class Scope:
    """Per-decision lookup of a path's first segment; cheap to build, caches what it computes."""

    __slots__ = (
        "_complexity", "_computed", "_context", "_local", "_messages", "_now", "_task_source",
        "_tokens", "_tz",
    )  # fmt: skip

    def __init__(
        self,
        context: Mapping[str, Any],
        messages: Sequence[Mapping[str, Any]],
        now: datetime | None,
        computed: Mapping[str, Any] | None,
        tz: ZoneInfo,
        task_source: str | None = None,
    ) -> None:
        self._context = context if type(context) is dict or isinstance(context, Mapping) else _EMPTY
        if computed is not None and type(computed) is not dict and not isinstance(computed, Mapping):
            computed = None
        self._computed = computed or _EMPTY
        self._messages = messages
        self._now = now
        self._tz = tz
        self._local: datetime | None = None
        self._tokens: int | None = None
        self._complexity: str | None = None
        self._task_source = task_source

    def field(self, name: str) -> Any:
        """A context field (unless ``computed`` shadows it), or MISSING; null counts as missing."""
        computed = self._computed
        if computed:
            value = computed.get(name)
            if value is not None:
                return value
        value = self._context.get(name)
        return MISSING if value is None else value

    def builtin(self, name: str) -> Any:
        """``prompt_tokens_est``, ``hour`` or ``weekday`` (unless ``computed`` shadows it)."""
        computed = self._computed
        if computed:
            value = computed.get(name)
            if value is not None:
                return value
        return _BUILTINS[name](self)

    def complexity(self) -> Any:
        """The seed's complexity tier of the last user message; MISSING without messages."""
        if not self._messages:
            return MISSING
        if self._complexity is None:
            self._complexity = classify_complexity(last_user_text(self._messages))
        return self._complexity

    def task_source(self) -> str:
        """Where ``task_type`` came from, as the caller says, else as the context shows."""
        if self._task_source is not None:
            return self._task_source
        given = self._context.get("task_type")
        return "context" if isinstance(given, str) and given != "auto" else "none"

    def prompt_tokens(self) -> int:
        """The caller's estimate if it is a usable count, else one made from the messages."""
        if self._tokens is None:
            given = _valid_token_count(self._computed.get("prompt_tokens_est"))
            if given is None:
                given = _valid_token_count(self._context.get("prompt_tokens_est"))
            self._tokens = given if given is not None else estimate_prompt_tokens(self._messages)
        return self._tokens

    def local_time(self) -> datetime:
        """``now`` in the rules' timezone; a naive ``now`` is taken to be UTC."""
        if self._local is None:
            now = self._now if self._now is not None else datetime.now(UTC)
            if now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
            self._local = now.astimezone(self._tz)
        return self._local


_BUILTINS: Final[dict[str, Callable[[Scope], Any]]] = {
    "prompt_tokens_est": Scope.prompt_tokens,
    "hour": lambda scope: scope.local_time().hour,
    "weekday": lambda scope: scope.local_time().weekday(),
    "complexity": Scope.complexity,
    "task_type_source": Scope.task_source,
}

#: Names computed by the engine itself; a context field of the same name is shadowed.
BUILTIN_NAMES: Final = frozenset(_BUILTINS)
