"""``routeq submit``, ``routeq result`` and ``routeq schema``: the producer side on the command line."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from producer_client.client import Client
from producer_client.contract import json_schemas
from producer_client.errors import RouteqError
from worker.cli.common import fail, parse_json_arg, print_json


def register(sub: Any) -> None:
    p = sub.add_parser("submit", help="enqueue one completion job")
    p.add_argument("--context", default="{}", help="routing context as JSON")
    p.add_argument("--prompt", help="the user message")
    p.add_argument("--messages", help="chat messages as a JSON list (instead of --prompt)")
    p.add_argument("--params", help="request params as JSON")
    p.add_argument("--metadata", help="metadata echoed in the result, as JSON")
    p.add_argument("--id", dest="job_id", help="your own job id (idempotent)")
    p.add_argument("--queue", default="interactive", choices=["interactive", "batch"])
    p.add_argument("--wait", action="store_true", help="wait for the result and print it")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait with --wait")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.add_argument("--pretty", action="store_true")
    p.set_defaults(func=_submit)

    r = sub.add_parser("result", help="print a job's result (optionally wait for it)")
    r.add_argument("job_id")
    r.add_argument("--wait", type=float, default=0.0, metavar="SECONDS")
    r.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    r.add_argument("--pretty", action="store_true")
    r.set_defaults(func=_result)

    s = sub.add_parser("schema", help="print the JSON Schema of the job and the result")
    s.set_defaults(func=_schema)


def _schema(args: argparse.Namespace) -> int:
    print_json(json_schemas(), pretty=True)
    return 0


def _submit(args: argparse.Namespace) -> int:
    if (args.prompt is None) == (args.messages is None):
        return fail("give exactly one of --prompt or --messages", 2)
    kwargs: dict[str, Any] = {
        "context": parse_json_arg(args.context, "--context"),
        "job_id": args.job_id,
        "queue": args.queue,
    }
    if args.prompt is not None:
        kwargs["prompt"] = args.prompt
    else:
        kwargs["messages"] = parse_json_arg(args.messages, "--messages")
    if args.params:
        kwargs["params"] = parse_json_arg(args.params, "--params")
    if args.metadata:
        kwargs["metadata"] = parse_json_arg(args.metadata, "--metadata")

    async def go() -> int:
        async with Client.from_url(args.redis) as client:
            job_id = await client.submit(**kwargs)
            if not args.wait:
                print_json({"job_id": job_id})
                return 0
            res = await client.result(job_id, timeout=args.timeout)
            print_json(res.model_dump(mode="json"), pretty=args.pretty)
            return 0 if res.ok else 1

    try:
        return asyncio.run(go())
    except RouteqError as exc:
        return fail(str(exc))


def _result(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with Client.from_url(args.redis) as client:
            if args.wait > 0:
                res = await client.result(args.job_id, timeout=args.wait)
            else:
                got = await client.get(args.job_id)
                if got is None:
                    return fail(f"no result for job {args.job_id} (unknown, queued, running or expired)")
                res = got
            print_json(res.model_dump(mode="json"), pretty=args.pretty)
            return 0

    try:
        return asyncio.run(go())
    except RouteqError as exc:
        return fail(str(exc))
