"""``routeq rules check [PATH]``: validate a rules file before a worker ever loads it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from worker.catalog import Catalog
from worker.rules import RulesError, RuleSet, load_rules
from worker.shipped import rules_file


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rules", help="validate routing rules files")
    commands = parser.add_subparsers(dest="rules_command", required=True)
    check = commands.add_parser(
        "check",
        help="validate a rules file and print its version",
        description="Validate a rules file; every problem is printed with its JSON path. Exit 1 if any.",
    )
    check.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=None,
        help="rules file (default: $ROUTEQ_RULES, else the shipped rules)",
    )
    check.set_defaults(func=check_command)


def load_or_report(path: Path | None, catalog: Catalog | None = None) -> RuleSet | None:
    """The rule set checked against the catalog (default: ``$ROUTEQ_CATALOG`` or the shipped one),
    or None after printing its problems to stderr (shared with ``route``)."""
    source = path if path is not None else rules_file()
    try:
        return load_rules(source, catalog=catalog if catalog is not None else Catalog.load())
    except RulesError as exc:
        count = len(exc.problems)
        print(f"{source}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        print(exc, file=sys.stderr)
        return None


def check_command(args: argparse.Namespace) -> int:
    rules = load_or_report(args.path)
    if rules is None:
        return 1
    print(f"ok: {len(rules.rules)} rules, version {rules.version} ({rules.source})")
    return 0
