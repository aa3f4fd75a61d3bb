"""The ``routeq`` command line: one sub-command module per concern, registered here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes ``register(subparsers)`` and sets ``func`` on its parsers.
COMMAND_MODULES: tuple[str, ...] = (
    "worker.cli.route_cmd",
    "worker.cli.rules_cmd",
    "worker.cli.emulator_cmd",
    "worker.cli.client_cmd",
    "worker.cli.worker_cmd",
    "worker.cli.demo_cmd",
    "worker.cli.budget_cmd",
    "worker.cli.deadletter_cmd",
    "worker.cli.batch_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routeq", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
