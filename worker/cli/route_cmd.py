"""``routeq route``: show which rule and model contexts route to, without calling anything.

The context goes through the same steps a worker takes: the job contract (a context ``submit``
would refuse is refused here, with the same message), task classification, the rules, then the
catalog's eligibility check, so the preview's rule, chain and trace are the worker's. Budget
counters live in Redis: pass what the rules should see with ``--computed``. ``--active`` routes
with the rules version and catalog the workers use now (from Redis) instead of a file, so its
preview is the fleet's decision. Decisions print as
JSON, one line each, so a file of contexts can be piped through ``jq`` or diffed between two
versions of the rules.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from worker.cli import exits
from worker.cli.client_cmd import add_prompt_arguments, read_prompt
from worker.cli.common import pinned_catalog, print_json, with_redis
from worker.cli.rules_cmd import load_or_report

if TYPE_CHECKING:  # imported where used: every routeq command would pay for them (main.py)
    from redis.asyncio import Redis

    from worker.routing import Policy


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
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--rules", metavar="PATH", type=Path, default=None, help="rules file")
    policy.add_argument("--active", action="store_true",
                        help="route with the rules version and catalog active in Redis ($REDIS_URL), "
                        "as the workers do")
    parser.add_argument("--redis", metavar="URL", help="Redis URL for --active (default: $REDIS_URL)")
    add_prompt_arguments(parser)
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
    from producer_client.errors import InvalidJob
    from worker.catalog import Catalog
    from worker.routing import Policy

    if args.active:
        active = _active_policy(args)
        if isinstance(active, int):
            return active
        policy = active
    else:
        catalog = Catalog.load()
        rules = load_or_report(args.rules, catalog)
        if rules is None:
            return exits.FAILED
        policy = Policy(rules, catalog)
    try:
        prompt = read_prompt(args) if args.context is not None else None
    except InvalidJob as exc:
        print(f"routeq route: {exc}", file=sys.stderr)
        return exits.USAGE
    router = _Router(policy, args.now, args.computed, args.pretty)
    if args.context is not None:
        try:
            context = _parse_object(args.context)
            router.emit(router.route(context, prompt))
        except (argparse.ArgumentTypeError, InvalidJob) as exc:
            print(f"routeq route: --context: {exc}", file=sys.stderr)
            return exits.USAGE
        return exits.OK
    default_prompt = read_prompt(args) if args.contexts != "-" else args.prompt
    try:
        if args.contexts == "-":
            return router.route_lines(sys.stdin, default_prompt)
        with open(args.contexts, encoding="utf-8") as lines:
            return router.route_lines(lines, default_prompt)
    except BrokenPipeError:
        raise  # our reader went away (`| head`): the command line ends quietly
    except OSError as exc:
        print(f"routeq route: cannot read {args.contexts}: {exc.strerror or exc}", file=sys.stderr)
        return exits.USAGE


def _active_policy(args: argparse.Namespace) -> Policy | int:
    """The fleet's policy from Redis (an exit code if it does not load)."""
    from worker.analytics.active_rules import active_rules
    from worker.catalog_store import fleet_catalog
    from worker.cli.report_cmd import keys_from_env
    from worker.routing import Policy
    from worker.rules import RulesError, compile_rules

    keys = keys_from_env()

    async def go(redis: Redis) -> Any:
        catalog, where = await fleet_catalog(redis, keys, pinned_catalog())
        return await active_rules(redis, keys), catalog, where

    rules, catalog, where = with_redis(args.redis, go)
    try:
        compiled = compile_rules(rules.doc, source=rules.source, catalog=catalog)
    except RulesError as exc:
        print(f"routeq route: the active rules ({rules.source}) do not load against {where}:\n{exc}",
              file=sys.stderr)
        return exits.FAILED
    print(f"routeq route: {rules.source}, {where}", file=sys.stderr)
    return Policy(compiled, catalog, rules.number)


class _Router:
    def __init__(
        self, policy: Policy, now: datetime | None, computed: Mapping[str, Any] | None, pretty: bool
    ) -> None:
        self.policy = policy
        self.now = now
        self.computed = computed
        self.pretty = pretty

    def route(self, context: Mapping[str, Any], prompt: str | None) -> dict[str, Any]:
        """The decision a worker would make for a job with this context and prompt."""
        from producer_client.jobs import parse_job
        from worker.routing import route

        job = parse_job({"messages": [{"role": "user", "content": prompt or ""}], "context": dict(context)})
        messages = [m.model_dump(exclude_none=True) for m in job.messages] if prompt else []
        r = route(self.policy, job, messages, now=self.now or datetime.now(UTC), computed=self.computed)
        out = r.decision.to_dict()
        trace = out.pop("trace")
        out.update({
            "rules_number": self.policy.number,
            "chain": list(r.chain),
            "skipped": [s.model_dump() for s in r.skipped],
            "max_tokens": r.max_tokens,
            "task_type": r.context.get("task_type"),
            "task_type_source": r.task_source,
            "trace": trace,
        })
        return out

    def emit(self, document: Mapping[str, Any]) -> None:
        print_json(document, pretty=self.pretty)

    def route_lines(self, lines: Iterable[str], default_prompt: str | None) -> int:
        """One decision per line, in order; a bad line prints an error object and fails the run."""
        from producer_client.errors import InvalidJob

        failed = False
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                context, prompt = _job_line(line)
                self.emit(self.route(context, prompt if prompt is not None else default_prompt))
            except (ValueError, InvalidJob) as exc:
                self.emit({"error": str(exc), "line": number})
                failed = True
        return exits.FAILED if failed else exits.OK


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
