"""The ``routeq`` command line: one sub-command module per concern, registered here.

Command modules import only the producer side and the pure core at the top, so the parser builds
in a producer-only install; a command that needs the worker side says what to install.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from redis.exceptions import RedisError

from producer_client.connection import redact, redis_url
from producer_client.envvars import SettingsError
from producer_client.errors import RedisUnavailable
from worker.catalog import CatalogError
from worker.cli import exits
from worker.version import routeq_version

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
    parser.add_argument("--version", action="version", version=f"routeq {routeq_version()}")
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
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exits.USAGE
    except RedisUnavailable as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exits.REDIS
    except (RedisError, ConnectionError) as exc:
        where = redact(getattr(args, "redis", None) or redis_url())
        print(f"{name}: Redis at {where}: {_reason(exc)}", file=sys.stderr)
        return exits.REDIS
    except CatalogError as exc:
        print(f"{name}: model catalog: {exc}", file=sys.stderr)
        return exits.USAGE
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in WORKER_EXTRA:
            raise
        print(f"routeq {args.command}: needs the worker side ({missing} is not installed): "
              "pip install 'routeq[worker]'", file=sys.stderr)
        return exits.NEEDS_WORKER
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return exits.INTERRUPTED
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `routeq ... | head` closed the pipe: not an error
        _quiet_broken_pipe()
    return code


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
