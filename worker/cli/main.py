"""The ``routeq`` command line: one sub-command module per concern, registered here.

Command modules import only the producer side and the pure core at the top, so the parser builds
in a producer-only install; a command that needs the worker side says what to install.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from producer_client.envvars import SettingsError
from worker.cli import exits

# Each module exposes ``register(subparsers)`` and sets ``func`` on its parsers. Every command (and
# --help) pays for what these modules import at their top, so that is the standard library and
# light modules of ours only: redis, pydantic, asyncio and the worker side are imported inside the
# command function (tests/unit/test_cli_startup.py checks it).
COMMAND_MODULES: tuple[str, ...] = (
    "worker.cli.route_cmd",
    "worker.cli.rules_cmd",
    "worker.cli.config_cmd",
    "worker.cli.emulator_cmd",
    "worker.cli.client_cmd",
    "worker.cli.worker_cmd",
    "worker.cli.demo_cmd",
    "worker.cli.budget_cmd",
    "worker.cli.health_cmd",
    "worker.cli.deadletter_cmd",
    "worker.cli.batch_cmd",
    "worker.cli.status_cmd",
    "worker.cli.dashboard_cmd",
    "worker.cli.catalog_cmd",
    "worker.cli.report_cmd",
    "worker.cli.suggest_cmd",
    "worker.cli.export_cmd",
)

#: Distributions of the ``worker`` extra, by import name.
WORKER_EXTRA = frozenset(
    {"arq", "httpx", "aiohttp", "h11", "fakeredis", "lupa", "prometheus_client"}
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routeq", description=__doc__)
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = f"routeq {args.command}"
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # `routeq ... | head` closed the pipe: not an error
        _quiet_broken_pipe()
        return exits.OK
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return exits.INTERRUPTED
    except Exception as exc:
        known = _one_line(name, args, exc)
        if known is None:  # not an error the user can act on: a bug, whose traceback is wanted
            raise
        return known
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `routeq ... | head` closed the pipe: not an error
        _quiet_broken_pipe()
    return code


def _one_line(name: str, args: argparse.Namespace, exc: Exception) -> int | None:
    """Print a known error as one line on stderr and return its exit code; None for any other."""
    if isinstance(exc, SettingsError):
        print(f"{name}: {exc}", file=sys.stderr)
        return exits.USAGE
    if _is_a(exc, "producer_client.errors", "RedisUnavailable"):
        print(f"{name}: {exc}", file=sys.stderr)
        return exits.REDIS
    if isinstance(exc, ConnectionError) or _is_a(exc, "redis.exceptions", "RedisError"):
        from producer_client.connection import redact, redis_url

        where = redact(getattr(args, "redis", None) or redis_url())
        print(f"{name}: Redis at {where}: {_reason(exc)}", file=sys.stderr)
        return exits.REDIS
    if _is_a(exc, "worker.catalog", "CatalogError"):
        print(f"{name}: model catalog: {exc}", file=sys.stderr)
        return exits.USAGE
    if isinstance(exc, ModuleNotFoundError):
        missing = (exc.name or "").split(".")[0]
        if missing not in WORKER_EXTRA:
            return None
        print(f"{name}: needs the worker side ({missing} is not installed): "
              "pip install 'routeq[worker]'", file=sys.stderr)
        return exits.NEEDS_WORKER
    return None


def _is_a(exc: BaseException, module: str, name: str) -> bool:
    """``isinstance(exc, module.name)`` without importing ``module`` (redis, pydantic and the catalog
    would cost every command ~0.3 s): an exception of that class can only have been raised once
    its module was imported, so a module not in ``sys.modules`` means no."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


class _VersionAction(argparse.Action):
    """``--version``: reads the installed version only when asked (``importlib.metadata`` is slow
    to import), then exits like argparse's own version action."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: Any = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default,
                         help=help or "show routeq's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from worker.version import routeq_version

        print(f"routeq {routeq_version()}")
        parser.exit()


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _quiet_broken_pipe() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
