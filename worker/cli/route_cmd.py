"""``routeq route``: show which rule and model contexts route to, without calling anything.

Decisions print as JSON, one line each, so a file of contexts can be piped through ``jq`` or
diffed between two versions of the rules. A context with no ``task_type`` (or ``"auto"``) and a
``--prompt`` is classified first, exactly as the worker does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from worker.classify import classified_context
from worker.cli.common import print_json
from worker.cli.rules_cmd import load_or_report
from worker.rules import RuleSet


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "route",
        help="show the routing decision for a context",
        description="Print the routing decision (rule, model chain, max_tokens, trace) as JSON.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--context", metavar="JSON", help="one routing context, as a JSON object")
    source.add_argument(
        "--contexts",
        metavar="FILE",
        help='JSON lines (\'-\' for stdin): a context object, or {"context": {...}, "prompt": "..."}',
    )
    parser.add_argument("--rules", metavar="PATH", type=Path, default=None, help="rules file")
    parser.add_argument("--prompt", metavar="TEXT", help="user message (classified if task_type is unset)")
    parser.add_argument("--now", metavar="ISO8601", type=_parse_now, help="clock for hour/weekday rules")
    parser.add_argument(
        "--computed", metavar="JSON", type=_parse_object, help='values rules can see, e.g. {"budget": {...}}'
    )
    parser.add_argument("--pretty", action="store_true", help="indent the JSON")
    parser.set_defaults(func=route_command)


def _parse_now(text: str) -> datetime:
    try:
        now = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _parse_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def route_command(args: argparse.Namespace) -> int:
    rules = load_or_report(args.rules)
    if rules is None:
        return 1
    router = _Router(rules, args.now, args.computed, args.pretty)
    if args.context is not None:
        try:
            context = _parse_object(args.context)
        except argparse.ArgumentTypeError as exc:
            print(f"routeq route: --context: {exc}", file=sys.stderr)
            return 1
        router.emit(router.route(context, args.prompt))
        return 0
    try:
        if args.contexts == "-":
            return router.route_lines(sys.stdin, args.prompt)
        with open(args.contexts, encoding="utf-8") as lines:
            return router.route_lines(lines, args.prompt)
    except OSError as exc:
        print(f"routeq route: cannot read {args.contexts}: {exc.strerror or exc}", file=sys.stderr)
        return 1


class _Router:
    def __init__(
        self, rules: RuleSet, now: datetime | None, computed: Mapping[str, Any] | None, pretty: bool
    ) -> None:
        self.rules = rules
        self.now = now
        self.computed = computed
        self.pretty = pretty

    def route(self, context: Mapping[str, Any], prompt: str | None) -> dict[str, Any]:
        messages = [{"role": "user", "content": prompt}] if prompt is not None else []
        routed, source = classified_context(context, messages)
        decision = self.rules.decide(routed, messages=messages, now=self.now, computed=self.computed)
        out = decision.to_dict()
        trace = out.pop("trace")
        out["task_type"] = routed.get("task_type")
        out["task_type_source"] = source
        out["trace"] = trace
        return out

    def emit(self, document: Mapping[str, Any]) -> None:
        print_json(document, pretty=self.pretty)

    def route_lines(self, lines: Iterable[str], default_prompt: str | None) -> int:
        """One decision per line, in order; a bad line prints an error object and fails the run."""
        failed = False
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                context, prompt = _job_line(line)
            except ValueError as exc:
                self.emit({"error": str(exc), "line": number})
                failed = True
                continue
            self.emit(self.route(context, prompt if prompt is not None else default_prompt))
        return 1 if failed else 0


def _job_line(line: str) -> tuple[dict[str, Any], str | None]:
    """(context, prompt) from a bare context or a ``{"context": ..., "prompt": ...}`` wrapper."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    if "context" not in value or not set(value) <= {"context", "prompt"}:
        return value, None
    context, prompt = value["context"], value.get("prompt")
    if not isinstance(context, dict):
        raise ValueError(f'"context" must be an object, got {type(context).__name__}')
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError(f'"prompt" must be a string, got {type(prompt).__name__}')
    return context, prompt
