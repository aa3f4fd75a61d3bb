"""``routeq config init DIR``: editable copies of the shipped rules and model catalog."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from worker.cli import exits
from worker.cli.common import fail


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="policy files: write editable copies of the shipped defaults")
    cmds = p.add_subparsers(dest="config_command", required=True)
    init = cmds.add_parser(
        "init", help="write rules.json, models.json and examples/ into DIR",
        description="Copy the shipped rules, model catalog and example rules into DIR, then point "
        "ROUTEQ_RULES and ROUTEQ_CATALOG at them.",
    )
    init.add_argument("dir", type=Path)
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    init.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    from worker.shipped import CATALOG, CATALOG_ENV, RULES, RULES_ENV, shipped, shipped_examples

    target: Path = args.dir
    names = [RULES, CATALOG, *shipped_examples()]
    existing = [n for n in names if (target / n).exists()]
    if existing and not args.force:
        return fail(f"{target / existing[0]} exists; pass --force to overwrite", exits.USAGE)
    try:
        for name in names:
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(shipped(name).read_bytes())
    except OSError as exc:
        return fail(f"cannot write into {target}: {exc.strerror or exc}", exits.USAGE)
    print(f"wrote {', '.join(names)} into {target}")
    print(f"use them with:\n  export {RULES_ENV}={(target / RULES).resolve()}")
    print(f"  export {CATALOG_ENV}={(target / CATALOG).resolve()}")
    return exits.OK
