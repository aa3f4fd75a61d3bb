"""``routeq demo``: the main job end to end on the embedded default (emulator, worker, Redis).

A mixed set of jobs (free user, code, vision, tools with its primary model down, enterprise,
latency-sensitive, low budget, auto-classified), each shown with the rule that routed it, the
model that served it, its cost and latency.
"""

from __future__ import annotations

from typing import Any, TextIO

from producer_client.contract import Result
from worker.demo.dashboard import DashboardOptions
from worker.demo.ending import finish
from worker.demo.stack import demo_stack
from worker.demo.tables import print_lines, routing_lines

_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}

DEMO_JOBS: list[tuple[str, dict[str, Any]]] = [
    ("free user", {"prompt": "Hi! What can you do?", "context": {"user_tier": "free"}}),
    ("code task", {
        "prompt": "Refactor this function:\n```python\ndef f(x): return x*2\n```",
        "context": {"user_tier": "pro", "task_type": "code", "budget_remaining": 40.0},
    }),
    ("vision", {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, _IMAGE]}
        ],
        "context": {"user_tier": "pro", "needs_vision": True, "budget_remaining": 40.0},
    }),
    ("tools (primary down)", {
        "prompt": "Please call the weather tool for Paris.",
        "context": {"user_tier": "pro", "needs_tools": True, "budget_remaining": 40.0},
        "params": {"tools": [_TOOL]},
    }),
    ("enterprise", {
        "prompt": "Summarise our Q3 churn drivers in three bullets.",
        "context": {"user_tier": "enterprise", "task_type": "analysis", "tenant": "acme"},
    }),
    ("latency-sensitive", {
        "prompt": "Classify: 'The delivery was late and the box was crushed.'",
        "context": {"user_tier": "pro", "task_type": "classification", "max_latency_ms": 1500,
                    "budget_remaining": 40.0},
    }),
    ("low budget", {
        "prompt": "Write a haiku about queues.",
        "context": {"user_tier": "basic", "task_type": "chat", "budget_remaining": 0.40},
    }),
    ("auto-classified", {
        "prompt": "Why does this crash?\n```python\nimport os\nos.remove(None)\n```",
        "context": {"user_tier": "pro", "task_type": "auto", "budget_remaining": 40.0},
    }),
]

# The demo shows a fallback: the tools rule's primary model is down in the emulator.
DEMO_FAULTS: dict[str, Any] = {"fail_always": ["openai/gpt-4o"]}


async def run_demo(url: str, *, out: TextIO, dashboard: DashboardOptions | None = None) -> list[Result]:
    """Run the mixed jobs and print how each was routed; returns their results."""
    async with demo_stack(url, out=out, faults=DEMO_FAULTS) as stack:
        ids = [await stack.client.submit(**spec) for _, spec in DEMO_JOBS]
        results = await stack.client.wait_all(ids, timeout=60)
        print_lines(routing_lines([name for name, _ in DEMO_JOBS], results), out)
        await finish(stack, dashboard, out=out)
    return results
