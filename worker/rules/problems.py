"""What is wrong with a rules document, each problem located by its JSON path.

Every validator appends :class:`Problem` values instead of raising, so one ``rules check`` shows
everything to fix; :class:`RulesError` carries them all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def child_path(parent: str, key: str | int) -> str:
    """JSONPath of a child: ``$.rules[3]``, ``$.rules[3].when``, ``$.when["tags.region"]``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key)}]"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a rules document, located by its JSON path (``$.rules[3].when``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RulesError(ValueError):
    """A rules document that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
