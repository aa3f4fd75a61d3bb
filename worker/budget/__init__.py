"""Budget caps: exact, atomic, concurrency-safe accounting in Redis.

Typical flow for one job::

    lines = applicable(budgets, job.context, now, tz, prefix=prefix)
    view = budget_view(await ledger.state(lines))            # what the rules see
    held = await ledger.reserve(job_id, lines, worst_case_nano(...))
    ...call upstream only if held.ok...
    await ledger.settle(job_id, actual_nano)                 # or ledger.release(job_id)
"""

from worker.budget.alerts import AlertSink
from worker.budget.config import (
    DEFAULT_ALERTS,
    MAX_LIMIT_NANO,
    BudgetConfigError,
    BudgetDef,
    parse_budgets,
)
from worker.budget.estimate import ModelPrices, worst_case_nano
from worker.budget.ledger import BudgetLedger
from worker.budget.lines import BudgetLine, applicable, scope_value
from worker.budget.records import (
    BudgetAlert,
    BudgetState,
    Denial,
    Reservation,
    Settlement,
)
from worker.budget.view import budget_view
from worker.budget.windows import WINDOW_KINDS, WindowKind, window_end, window_id

__all__ = [
    "DEFAULT_ALERTS",
    "MAX_LIMIT_NANO",
    "WINDOW_KINDS",
    "AlertSink",
    "BudgetAlert",
    "BudgetConfigError",
    "BudgetDef",
    "BudgetLedger",
    "BudgetLine",
    "BudgetState",
    "Denial",
    "ModelPrices",
    "Reservation",
    "Settlement",
    "WindowKind",
    "applicable",
    "budget_view",
    "parse_budgets",
    "scope_value",
    "window_end",
    "window_id",
    "worst_case_nano",
]
