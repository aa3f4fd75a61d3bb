"""Budget caps: exact, atomic, concurrency-safe accounting in Redis.

Typical flow for one job::

    lines = applicable(budgets, job.context, now, tz, prefix=prefix)
    view = budget_view(await ledger.state(lines))            # what the rules see
    held = await ledger.reserve(job_id, lines, worst_case_nano(...))
    ...call upstream only if held.ok...
    await ledger.settle(job_id, actual_nano)                 # or ledger.release(job_id)
"""

# The pure parts only: the ledger (redis) and the alert sink (httpx) are imported from their own
# modules, so loading a rules file never pulls in a network client.
from worker.budget.config import (
    DEFAULT_ALERTS,
    MAX_LIMIT_NANO,
    BudgetConfigError,
    BudgetDef,
    parse_budgets,
)
from worker.budget.estimate import ModelPrices, worst_case_nano
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
    "BudgetAlert",
    "BudgetConfigError",
    "BudgetDef",
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
