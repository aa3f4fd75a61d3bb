"""The type of a compiled condition: a scope in, a Kleene truth value and a reason out."""

from __future__ import annotations

from collections.abc import Callable

from worker.rules.scope import Scope
from worker.rules.values import Outcome

Condition = Callable[[Scope], Outcome]
