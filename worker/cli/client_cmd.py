"""``routeq submit``, ``routeq result`` and ``routeq schema``: the producer side on the command line.

Exit codes: 0 the job succeeded (or was only enqueued), 1 it failed or was rejected (or has no
result yet), 2 bad input, 4 Redis trouble, 130 interrupted. ``submit --wait`` prints the job id on
stderr before it waits, so an interrupted wait can go on with ``routeq result ID --wait S``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer_client.keys import QUEUES
from worker.cli import exits
from worker.cli.common import fail, parse_json_arg, print_json

if TYPE_CHECKING:  # imported where used: every routeq command would pay for them (main.py)
    from producer_client.contract import Result


def register(sub: Any) -> None:
    p = sub.add_parser("submit", help="enqueue one completion job")
    p.add_argument("--context", default="{}", help="routing context as JSON")
    add_prompt_arguments(p)
    p.add_argument("--messages", help="chat messages as a JSON list (instead of --prompt)")
    p.add_argument("--params", help="request params as JSON")
    p.add_argument("--metadata", help="metadata echoed in the result, as JSON")
    p.add_argument("--id", dest="job_id", help="your own job id (idempotent)")
    p.add_argument("--queue", default="interactive", choices=QUEUES)
    p.add_argument("--wait", action="store_true", help="wait for the result and print it")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait with --wait")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.add_argument("--pretty", action="store_true")
    p.set_defaults(func=_submit)

    r = sub.add_parser("result", help="print a job's result (optionally wait); exit 1 unless it succeeded")
    r.add_argument("job_id")
    r.add_argument("--wait", type=float, default=0.0, metavar="SECONDS")
    r.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    r.add_argument("--pretty", action="store_true")
    r.set_defaults(func=_result)

    s = sub.add_parser("schema", help="print the JSON Schema of the job and the result")
    s.set_defaults(func=_schema)

    f = sub.add_parser("feedback", help="record how good a job's answer was (score 0-1 and/or a label)")
    f.add_argument("job_id")
    f.add_argument("--score", type=float, help="quality in [0, 1]")
    f.add_argument("--label", help="a label, e.g. 'correct' or 'wrong-language'")
    f.add_argument("--comment", help="free text, kept with the feedback")
    f.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    f.set_defaults(func=_feedback)


def add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", help="the user message ('-' reads it from stdin)")
    p.add_argument("--prompt-file", type=Path, metavar="PATH",
                   help="read the user message from a file (prompts over ~128 KB cannot be arguments)")


def read_prompt(args: argparse.Namespace) -> str | None:
    """The prompt from --prompt TEXT, --prompt - (stdin) or --prompt-file PATH; None if none given."""
    from producer_client.errors import InvalidJob

    if args.prompt is not None and args.prompt_file is not None:
        raise InvalidJob("give --prompt or --prompt-file, not both")
    if args.prompt_file is not None:
        try:
            return str(args.prompt_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise InvalidJob(f"--prompt-file {args.prompt_file}: {why}") from None
    if args.prompt == "-":
        return sys.stdin.read()
    return str(args.prompt) if args.prompt is not None else None


def _schema(args: argparse.Namespace) -> int:
    from producer_client.contract import json_schemas

    print_json(json_schemas(), pretty=True)
    return 0


def _submit(args: argparse.Namespace) -> int:
    import asyncio

    from producer_client.client import Client
    from producer_client.errors import InvalidJob, ResultTimeout

    try:
        prompt = read_prompt(args)
    except InvalidJob as exc:
        return fail(str(exc), exits.USAGE)
    if (prompt is None) == (args.messages is None):
        return fail("give exactly one of --prompt, --prompt-file or --messages", exits.USAGE)
    kwargs: dict[str, Any] = {
        "context": parse_json_arg(args.context, "--context"),
        "job_id": args.job_id,
        "queue": args.queue,
    }
    if prompt is not None:
        kwargs["prompt"] = prompt
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
                return exits.OK
            print(f"routeq submit: job {job_id} enqueued; waiting for its result "
                  f"(resume with: routeq result {job_id} --wait {args.timeout:g})", file=sys.stderr)
            res = await client.result(job_id, timeout=args.timeout, queue=args.queue)
            return _print(res, args.pretty)

    try:
        return asyncio.run(go())
    except InvalidJob as exc:
        return fail(f"invalid job: {exc}", exits.USAGE)
    except ResultTimeout as exc:
        return fail(str(exc), exits.FAILED)


def _result(args: argparse.Namespace) -> int:
    import asyncio

    from producer_client.client import Client
    from producer_client.errors import ResultTimeout

    async def go() -> int:
        async with Client.from_url(args.redis) as client:
            if args.wait > 0:
                res = await client.result(args.job_id, timeout=args.wait)
            else:
                got = await client.get(args.job_id)
                if got is None:
                    return fail(f"no result for job {args.job_id} (unknown, queued, running or expired)")
                res = got
            return _print(res, args.pretty)

    try:
        return asyncio.run(go())
    except ResultTimeout as exc:
        return fail(str(exc), exits.FAILED)


def _feedback(args: argparse.Namespace) -> int:
    import asyncio

    from producer_client.client import Client
    from producer_client.errors import InvalidFeedback, InvalidJob, UnknownJob

    async def go() -> bool:
        async with Client.from_url(args.redis) as client:
            return await client.feedback(args.job_id, args.score, args.label, args.comment)

    try:
        replaced = asyncio.run(go())
    except (InvalidFeedback, InvalidJob) as exc:
        return fail(str(exc), exits.USAGE)
    except UnknownJob as exc:
        return fail(str(exc), exits.FAILED)
    print(f"feedback recorded for {args.job_id}" + (" (replacing the earlier one)" if replaced else ""))
    return exits.OK


def _print(res: Result, pretty: bool) -> int:
    print_json(res.model_dump(mode="json"), pretty=pretty)
    return exits.OK if res.ok else exits.FAILED
