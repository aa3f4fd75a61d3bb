"""``routeq worker``: the same process ``python -m worker`` runs (the Procfile's worker type)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a worker (settings from the environment, see README)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from worker.serve import main

    return main()
