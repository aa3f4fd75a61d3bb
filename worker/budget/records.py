"""What the ledger reports: counter states, reservations, settlements and threshold alerts.

Plain frozen values with integer nano-USD; ``as_dict`` renders decimal strings for JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from producer_client.money import nano_to_usd

ReservationState = Literal["open", "settled", "reclaimed", "denied", "none"]
SettlementState = Literal["settled", "reclaimed", "none"]


@dataclass(frozen=True)
class BudgetState:
    """One counter: money charged (``spent``), held for in-flight jobs (``reserved``), and cap."""

    key: str
    name: str
    scope: str
    window: str
    spent_nano: int
    reserved_nano: int
    limit_nano: int

    @property
    def remaining_nano(self) -> int:
        """What a new reservation may still take (never negative, even after an overrun)."""
        return max(0, self.limit_nano - self.spent_nano - self.reserved_nano)

    @property
    def used_ratio(self) -> float:
        """(spent + reserved) / limit: committed share of the cap (a routing input, not money)."""
        if self.limit_nano <= 0:
            return 1.0
        return (self.spent_nano + self.reserved_nano) / self.limit_nano

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "scope": self.scope,
            "window": self.window,
            "spent_usd": nano_to_usd(self.spent_nano),
            "reserved_usd": nano_to_usd(self.reserved_nano),
            "limit_usd": nano_to_usd(self.limit_nano),
        }


@dataclass(frozen=True)
class Denial:
    """The first budget that could not take the reservation."""

    name: str
    key: str
    limit_nano: int
    remaining_nano: int


@dataclass(frozen=True)
class Reservation:
    """Outcome of :meth:`BudgetLedger.reserve`.

    ``ok`` means the job is covered: it may spend up to ``amount_nano`` upstream. Otherwise
    ``state`` says why: ``denied`` (a budget is short, see ``denied``), or ``settled`` /
    ``reclaimed``: this job id was already charged, and a new upstream call would be spend that
    nobody reserved (write the job off as done, or reserve a fresh attempt under a new id).
    ``replayed`` means an earlier reservation for this job id was returned unchanged (a job
    delivered twice must not hold twice). ``none``: no budget applied, nothing was stored.
    """

    job_id: str
    ok: bool
    state: ReservationState
    amount_nano: int
    replayed: bool = False
    added: bool = False  # ``add`` grew an open reservation (``amount_nano`` is its new total)
    lease_deadline: float | None = None  # unix seconds, Redis clock
    lines: tuple[BudgetState, ...] = ()
    denied: Denial | None = None


@dataclass(frozen=True)
class BudgetAlert:
    """A counter's ``spent`` reached ``threshold`` percent of its limit (once per window)."""

    key: str
    name: str
    scope: str
    window: str
    threshold: int
    spent_nano: int
    limit_nano: int
    job_id: str

    def as_dict(self) -> dict[str, str | int]:
        return {
            "budget": self.name,
            "scope": self.scope,
            "window": self.window,
            "threshold": self.threshold,
            "spent_usd": nano_to_usd(self.spent_nano),
            "limit_usd": nano_to_usd(self.limit_nano),
            "job_id": self.job_id,
        }


@dataclass(frozen=True)
class Settlement:
    """Outcome of :meth:`BudgetLedger.settle` / ``release`` / a reclaim.

    ``charged_nano`` is what each of the reservation's counters was charged in total;
    ``replayed`` means this call changed nothing and returns the recorded outcome.
    ``alerts`` are the threshold crossings this very call caused.
    """

    job_id: str
    state: SettlementState
    replayed: bool
    reserved_nano: int = 0
    charged_nano: int = 0
    lines: tuple[BudgetState, ...] = ()
    alerts: tuple[BudgetAlert, ...] = ()

    @property
    def overrun_nano(self) -> int:
        """Charged beyond the reservation: real spend the worst-case estimate missed."""
        return max(0, self.charged_nano - self.reserved_nano)
