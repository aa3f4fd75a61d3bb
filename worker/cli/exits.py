"""Exit codes of every ``routeq`` command (documented in the README's command table)."""

from __future__ import annotations

from typing import Final

OK: Final = 0
#: What was checked is not fine: a job failed or was rejected, a rules file has problems.
FAILED: Final = 1
#: Bad usage, setting or input: nothing was done.
USAGE: Final = 2
#: A compare-and-swap lost: someone else changed the state first (``rules push --expect``).
CONFLICT: Final = 3
#: Redis could not be reached, or refused the connection or its credentials.
REDIS: Final = 4
#: The command needs the worker side: ``pip install 'routeq[worker]'``.
NEEDS_WORKER: Final = 5
#: Interrupted (Ctrl-C).
INTERRUPTED: Final = 130
