"""(h) Upstream client: many concurrent calls through ``OpenRouterClient``: the completion POST on
aiohttp's pool directly (the worker's default, worker/openrouter/poster.py) vs httpx with its own
connection pool (``HttpxPoster``, what an httpx-only client would do).

httpcore's pool rescans every connection on each state change, so its cost per request grows with
the number of connections (encode/httpcore#1035). Calls run in this process against the
emulator; client CPU is this process's CPU time.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.plan import Plan, Say
from bench.procs import API_KEY, Children
from bench.report import Row
from worker.openrouter import ChatRequest, OpenRouterClient
from worker.openrouter.settings import OpenRouterSettings

SECTION = "h upstream"
_REQUEST = ChatRequest(
    messages=[{"role": "user", "content": "Say hi."}], chain=("openai/gpt-4o-mini",), max_tokens=16
)


async def calls(
    base_url: str, n: int, concurrency: int, cap_s: float, httpx_pool: bool
) -> tuple[int, float, float]:
    """(calls finished, seconds to the last one, client CPU ms per finished call) within ``cap_s``.

    A saturated event loop can overrun the cap: one loop pass runs every ready task, and with
    httpx's pool each of them may scan every connection. Concurrency is kept moderate for that.
    """
    settings = OpenRouterSettings(
        base_url=base_url, api_key=API_KEY, max_connections=concurrency, max_retries=0
    )
    transport = None
    if httpx_pool:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        transport = httpx.AsyncHTTPTransport(limits=limits)
    done, last = 0, 0.0
    sem = asyncio.Semaphore(concurrency)
    async with OpenRouterClient(settings, transport=transport) as client:

        async def one() -> None:
            nonlocal done, last
            async with sem:
                await client.complete(_REQUEST, deadline=time.monotonic() + 60)
                done, last = done + 1, time.perf_counter()

        cpu0, t0 = time.process_time(), time.perf_counter()
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        _, pending = await asyncio.wait(tasks, timeout=cap_s)
        wall, cpu = max(last - t0, 1e-9), time.process_time() - cpu0
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return done, wall, cpu * 1000 / max(done, 1)


def run(plan: Plan, say: Say) -> list[Row]:
    n, conc, cap = plan.upstream_calls, plan.upstream_concurrency, plan.upstream_cap_s
    with Children() as ch:
        emu = ch.emulator(1000)
        ours = asyncio.run(calls(emu.base_url, n, conc, cap, httpx_pool=False))
        base = asyncio.run(calls(emu.base_url, n, conc, cap, httpx_pool=True))
    say(f"upstream: aiohttp {ours}, httpx pool {base}")
    title = f"{n:,} calls, {conc} in flight, emulator 1 s"
    base_name = "httpx's own pool (httpcore)"
    sides = (("routeq", ours), ("httpx", base))
    cut = [f"{label} cut at {cap:g} s: {d}/{n} done" for label, (d, _, _) in sides if d < n]
    return [
        Row(SECTION, f"{title}: calls/s, POST on aiohttp's pool", ours[0] / ours[1], "calls/s",
            base_name, base[0] / base[1], "higher", note="; ".join(cut),
            status="ok" if ours[0] == n else "partial"),
        Row(SECTION, f"{title}: client CPU per call", ours[2], "ms", base_name, base[2], "lower",
            note=f"ideal {min(n, conc):,} calls/s"),
    ]
