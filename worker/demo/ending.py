"""How a demo ends: where to see its jobs, how to remove them, or the dashboard served in-process."""

from __future__ import annotations

from typing import TextIO

from producer_client.connection import redact, redis_url
from worker.demo.dashboard import DashboardOptions, serve_until_stopped
from worker.demo.housekeeping import DEMO_PREFIX
from worker.demo.stack import Backend, DemoStack


def closing_lines(backend: Backend, *, served: bool) -> list[str]:
    """The last lines: on a real Redis, the dashboard and clean-up commands; on the stand-in,
    that its data goes with the process (unless it was just served)."""
    if backend.real:
        # Both commands read REDIS_URL; name the URL only when the demo was given another one.
        redis = "" if backend.url == redis_url() else f" --redis {redact(backend.url)}"
        return [
            f"see it: routeq dashboard --prefix {DEMO_PREFIX}{redis}",
            f"  (also routeq report, suggest and status with ROUTEQ_PREFIX={DEMO_PREFIX}; "
            "the demo's keys expire within a day)",
            f"remove it now: routeq demo --clean{redis}",
        ]
    if served:
        return ["the stand-in's data went with the dashboard; start a Redis (REDIS_URL) and run the demo "
                f"again to keep it for `routeq dashboard --prefix {DEMO_PREFIX}`"]
    return ["the stand-in's data ends with this demo: `routeq demo --dashboard` serves the dashboard on it "
            "until Ctrl-C, or start a Redis (REDIS_URL) and run the demo again to keep it for "
            f"`routeq dashboard --prefix {DEMO_PREFIX}`"]


async def finish(stack: DemoStack, dashboard: DashboardOptions | None, *, out: TextIO) -> None:
    """Serve the dashboard until Ctrl-C when asked (the worker still runs), then the closing lines."""
    if dashboard is not None:
        where = stack.backend.description
        await serve_until_stopped(stack.redis, stack.keys, dashboard, where=where, out=out)
    print("", file=out)
    for line in closing_lines(stack.backend, served=dashboard is not None):
        print(line, file=out)
