"""What one job's upstream calls added up to: cost, tokens, attempts and cascade steps.

A job makes one call, or with a validated cascade one call per step; the result reports the sum
(every step was billed) and the answers' verdicts in ``routing.escalations``. Pure bookkeeping,
kept apart from the pipeline's I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from producer_client.contract import AttemptInfo
from producer_client.money import nano_to_usd
from worker.openrouter import Attempt, Completion

#: When steps' costs come from different sources, the result names the least certain one.
_CERTAINTY = ("usage.cost", "catalog", "none", "unknown_outcome")
_ATTEMPT_FIELDS = frozenset(AttemptInfo.model_fields)


@dataclass
class Tally:
    cost_nano: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    source: str = "usage.cost"
    answered: bool = False  # at least one completion came back
    attempts: list[dict[str, Any]] = field(default_factory=list)  # the result's routing.attempts
    steps: list[dict[str, Any]] = field(default_factory=list)  # its routing.escalations

    def add_attempts(self, attempts: tuple[Attempt, ...]) -> None:
        self.attempts.extend(attempt_info(a) for a in attempts)

    def add_answer(self, c: Completion, cost_nano: int, source: str) -> None:
        self.answered = True
        self.cost_nano += cost_nano
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        self._source(source)
        self.add_attempts(c.attempts)

    def add_step(self, model: str, accepted: bool, reason: str, cost_nano: int = 0) -> None:
        self.steps.append({"model": model, "accepted": accepted, "reason": reason,
                           "cost_usd": nano_to_usd(cost_nano)})

    def usage(self, unknown_nano: int) -> dict[str, Any] | None:
        """The job's usage: every answer, plus the worst case of each attempt whose outcome is
        unknown (it may have been billed). None when nothing was answered nor possibly billed."""
        if not self.answered and not unknown_nano:
            return None
        if unknown_nano:
            self._source("unknown_outcome")
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": nano_to_usd(self.cost_nano + unknown_nano),
            "cost_source": self.source,
        }

    def reasons(self) -> str:
        return "; ".join(f"{s['model']}: {s['reason']}" for s in self.steps if not s["accepted"])

    def _source(self, source: str) -> None:
        if _CERTAINTY.index(source) > _CERTAINTY.index(self.source):
            self.source = source


def attempt_info(a: Attempt) -> dict[str, Any]:
    """An attempt as the result's ``routing.attempts`` holds it."""
    return {k: v for k, v in a.to_dict().items() if k in _ATTEMPT_FIELDS}
