"""``routeq emulator``: serve the OpenRouter emulator on loopback until SIGINT/SIGTERM.

Once listening it prints exactly one line, ``emulator listening on http://HOST:PORT/api/v1``,
so a parent process can wait for it (``--port 0`` shows the port actually bound).
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: every routeq command would pay for them (main.py)
    from worker.emulator.faults import FaultConfig


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulator", help="serve the OpenRouter emulator", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    parser.add_argument("--faults", metavar="FILE", help="fault/latency JSON (see faults.py)")
    parser.add_argument("--latency-ms", type=float, help='sets models["*"].latency_ms')
    parser.add_argument("--fail-rate", type=float, help='sets models["*"].error_5xx')
    parser.add_argument("--seed", type=int, help="seed of the fault generator")
    parser.add_argument("--api-key", action="append",
                        help="accept only this bearer key; repeat for several (default: any key)")
    parser.add_argument("--credit-limit", metavar="USD", help="402 once usage would pass this")
    parser.add_argument(
        "--catalog", metavar="FILE", help="models JSON (default: $ROUTEQ_CATALOG, else the shipped one)"
    )
    parser.set_defaults(func=run)


def build_faults(args: argparse.Namespace) -> FaultConfig:
    from worker.emulator.faults import FaultConfig

    config = FaultConfig.load(args.faults) if args.faults else FaultConfig()
    changes: dict[str, float] = {}
    if args.latency_ms is not None:
        changes["latency_ms"] = args.latency_ms
    if args.fail_rate is not None:
        changes["error_5xx"] = args.fail_rate
    if changes:
        config = config.with_defaults(**changes)
    if args.seed is not None:
        doc = config.to_dict()
        doc["seed"] = args.seed
        config = FaultConfig.from_dict(doc)
    return config


def run(args: argparse.Namespace) -> int:
    import asyncio

    from worker.catalog import Catalog, CatalogError
    from worker.emulator.faults import FaultConfigError

    if not 0 <= args.port <= 65535:
        print(f"routeq emulator: --port {args.port} is out of range 0-65535", file=sys.stderr)
        return 2
    try:
        faults = build_faults(args)
        catalog = Catalog.load(args.catalog)
        credit_limit = Decimal(args.credit_limit) if args.credit_limit is not None else None
    except (FaultConfigError, CatalogError, OSError, InvalidOperation) as exc:
        print(f"routeq emulator: {exc}", file=sys.stderr)
        return 2

    from worker.emulator.runner import RunningEmulator, run_until_signal

    def announce(emulator: RunningEmulator) -> None:
        print(f"emulator listening on {emulator.base_url}", flush=True)

    try:
        asyncio.run(
            run_until_signal(
                announce,
                host=args.host,
                port=args.port,
                faults=faults,
                api_key=args.api_key,
                catalog=catalog,
                credit_limit=credit_limit,
            )
        )
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        print(f"routeq emulator: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0

