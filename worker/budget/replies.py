"""Decode the budget scripts' replies (nested arrays of strings) into records.

Works with clients created with or without ``decode_responses``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from worker.budget.lines import BudgetLine
from worker.budget.records import (
    BudgetAlert,
    BudgetState,
    Denial,
    Reservation,
    ReservationState,
    Settlement,
    SettlementState,
)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def states(rows: Sequence[Sequence[Any]]) -> tuple[BudgetState, ...]:
    """``[key, spent, reserved, limit, name, scope, window]`` rows."""
    return tuple(
        BudgetState(
            key=text(r[0]),
            spent_nano=int(r[1]),
            reserved_nano=int(r[2]),
            limit_nano=int(r[3]),
            name=text(r[4]),
            scope=text(r[5]),
            window=text(r[6]),
        )
        for r in rows
    )


def alerts(rows: Sequence[Sequence[Any]]) -> tuple[BudgetAlert, ...]:
    """``[key, name, scope, window, threshold, spent, limit, job_id]`` rows."""
    return tuple(
        BudgetAlert(
            key=text(r[0]),
            name=text(r[1]),
            scope=text(r[2]),
            window=text(r[3]),
            threshold=int(r[4]),
            spent_nano=int(r[5]),
            limit_nano=int(r[6]),
            job_id=text(r[7]),
        )
        for r in rows
    )


def reservation(
    job_id: str, amount_nano: int, lines: Sequence[BudgetLine], reply: Sequence[Any]
) -> Reservation:
    kind = text(reply[0])
    if kind == "none":
        return Reservation(job_id, ok=False, state="none", amount_nano=amount_nano)
    if kind == "denied":
        line = lines[int(reply[1]) - 1]
        remaining = line.limit_nano - int(reply[2]) - int(reply[3])
        denial = Denial(line.name, line.key, line.limit_nano, max(0, remaining))
        return Reservation(job_id, ok=False, state="denied", amount_nano=amount_nano, denied=denial)
    deadline = text(reply[3])
    state = cast(ReservationState, text(reply[1]))
    return Reservation(
        job_id,
        ok=state == "open",
        state=state,
        amount_nano=int(reply[2]),
        replayed=kind == "replayed",
        added=kind == "added",
        lease_deadline=int(deadline) / 1000 if deadline else None,
        lines=states(reply[4]),
    )


def settlement(job_id: str, reply: Sequence[Any]) -> Settlement:
    state = text(reply[0])
    if state == "none":
        return Settlement(job_id, state="none", replayed=False)
    return Settlement(
        job_id,
        state=cast(SettlementState, state),
        replayed=int(reply[1]) == 0,
        reserved_nano=int(reply[2]),
        charged_nano=int(reply[3]),
        lines=states(reply[4]),
        alerts=alerts(reply[5]),
    )
