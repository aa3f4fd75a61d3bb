"""The ``routeq`` command line: one sub-command module per concern, registered here.

Command modules import only the producer side and the pure core at the top, so the parser builds
in a producer-only install; a command that needs the worker side says what to install.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from worker.cli import exits

# Each module exposes ``register(subparsers)`` and sets ``func`` on its parsers.
COMMAND_MODULES: tuple[str, ...] = (
    "worker.cli.route_cmd",
    "worker.cli.rules_cmd",
    "worker.cli.config_cmd",
    "worker.cli.emulator_cmd",
    "worker.cli.client_cmd",
    "worker.cli.worker_cmd",
    "worker.cli.demo_cmd",
    "worker.cli.budget_cmd",
    "worker.cli.deadletter_cmd",
    "worker.cli.batch_cmd",
)

#: Distributions of the ``worker`` extra, by import name.
WORKER_EXTRA = frozenset({"arq", "httpx", "httpx_aiohttp", "aiohttp", "h11", "fakeredis", "lupa"})


def routeq_version() -> str:
    try:
        return version("routeq")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routeq", description=__doc__)
    parser.add_argument("--version", action="version", version=f"routeq {routeq_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in WORKER_EXTRA:
            raise
        print(f"routeq {args.command}: needs the worker side ({missing} is not installed): "
              "pip install 'routeq[worker]'", file=sys.stderr)
        return exits.NEEDS_WORKER
    except KeyboardInterrupt:
        print(f"routeq {args.command}: interrupted", file=sys.stderr)
        return exits.INTERRUPTED
    except BrokenPipeError:
        _quiet_broken_pipe()
        return exits.OK
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `routeq ... | head` closed the pipe: not an error
        _quiet_broken_pipe()
    return code


def _quiet_broken_pipe() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
