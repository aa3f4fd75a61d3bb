"""``routeq dashboard`` in a real headless Chromium: the page loads without console errors, every
chart and table is drawn with the data of a known run, and a screenshot is not blank.

The page records what it drew in ``data-drawn`` attributes and every error it met in
``<html data-errors>`` (static/errors.js), and Chromium's ``--dump-dom`` prints the DOM once the
page's fetches are done (``--virtual-time-budget``). ``ROUTEQ_SAVE_SCREENSHOT=docs/dashboard.png``
keeps the screenshot (that is how the README's picture is made).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from producer_client.client import Client
from producer_client.contract import Result
from producer_client.money import nano_to_usd, usd_to_nano
from tests.support import emu
from tests.support.procs import REPO, Emulator, WorkerProcess, _Child, base_env
from tests.support.rules import rules_with_budgets

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)"),
]
TOKEN = "dash-token-7f3a"
FAULTS = {"fail_always": ["openai/gpt-4o"]}  # the vision and tools rules fall back
EXPERIMENT = {
    "name": "free-llama", "rule": "free-tier", "status": "running", "unit": "user_id", "salt": "t1",
    "variants": [{"name": "control", "weight": 50},
                 {"name": "llama", "weight": 50, "model": "meta-llama/llama-3.1-8b-instruct"}],
}
JOBS: list[dict[str, Any]] = [
    *({"prompt": f"Hi there, question {i}", "context": {"user_tier": "free", "user_id": f"u{i}"}}
      for i in range(8)),
    *({"prompt": "Refactor: def f(x): return x*2", "context": {"user_tier": "pro", "task_type": "code"}}
      for _ in range(3)),
    *({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
       "context": {"user_tier": "pro", "needs_vision": True}} for _ in range(2)),
    {"prompt": "Summarise our churn drivers", "context": {"user_tier": "enterprise", "tenant": "acme"}},
    {"prompt": "Classify: late delivery", "context": {"user_tier": "pro", "task_type": "classification",
                                                       "max_latency_ms": 1500}},
]


@contextmanager
def known_run(redis_url: str, emulator: Emulator, tmp: Path) -> Iterator[tuple[WorkerProcess, list[Result]]]:
    """The demo's kind of traffic with a budget, an experiment, fallbacks and feedback; the
    worker that ran it stays up until the block ends."""
    import asyncio

    emu.set_faults(emulator.base_url, FAULTS)
    budget = {"name": "daily", "scope": "global", "limit_usd": "2.00", "window": "day"}
    rules = rules_with_budgets(tmp, [budget])
    doc = orjson.loads(rules.read_bytes())
    doc["experiments"] = [EXPERIMENT]
    rules.write_bytes(orjson.dumps(doc))
    worker = WorkerProcess(redis_url, emulator.base_url, ROUTEQ_RULES=str(rules), ROUTEQ_HEARTBEAT_S="0.5")

    async def go() -> list[Result]:
        client = Client.from_url(redis_url)
        try:
            ids = [await client.submit(**spec) for spec in JOBS]
            results = await client.wait_all(ids, timeout=60)
            for r in results[:4]:
                await client.feedback(r.job_id, score=0.8)
            return results
        finally:
            await client.close()

    try:
        yield worker, asyncio.run(go())
    finally:
        worker.kill()


@pytest.fixture()
def dashboard(redis_url: str) -> Iterator[str]:
    proc = _Child([sys.executable, "-m", "worker.cli.main", "dashboard", "--port", "0", "--redis", redis_url],
                  base_env(ROUTEQ_DASHBOARD_TOKEN=TOKEN))
    try:
        line = proc.wait_for_line("routeq dashboard on http://")
        yield re.search(r"(http://\S+/)", line).group(1)  # type: ignore[union-attr]
    finally:
        proc.stop(10)


def chromium(
    url: str, *extra: str, budget_ms: int = 8000, size: str = "1280,900"
) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="routeq-chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", f"--window-size={size}", f"--virtual-time-budget={budget_ms}",
             *extra, url],
            capture_output=True, text=True, timeout=120,
        )


def drawn(dom: str, element_id: str) -> Any:
    match = re.search(rf'id="{element_id}"[^>]*?data-drawn="([^"]*)"', dom) or re.search(
        rf'data-drawn="([^"]*)"[^>]*?id="{element_id}"', dom)
    assert match, f"#{element_id} drew nothing"
    return orjson.loads(unescape(match.group(1)))


def png_colours(path: Path) -> int:
    """Distinct colours of an 8-bit RGB(A) PNG, decoded with zlib (no imaging library)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour = header[8], header[9]
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colours = bytearray(stride), set()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        if y % 4 == 0:
            colours.update(bytes(line[x:x + 3]) for x in range(0, stride, bpp * 2))
        prev = line
    return len(colours)


def test_the_dashboard_draws_a_known_run(redis_url: str, clean_emulator: Emulator, dashboard: str,
                                         tmp_path: Path) -> None:
    page = f"{dashboard}?token={TOKEN}"
    with known_run(redis_url, clean_emulator, tmp_path) as (worker, results):
        dom = chromium(page, "--dump-dom").stdout
        shot = tmp_path / "dashboard.png"
        chromium(page, f"--screenshot={shot}")
        keep = os.environ.get("ROUTEQ_SAVE_SCREENSHOT")
        if keep:  # the README's picture: tall enough for every panel
            target = REPO / keep
            target.parent.mkdir(parents=True, exist_ok=True)
            chromium(page, f"--screenshot={target}", size="1280,1250")
            assert png_colours(target) > 50
    html_tag = re.search(r"<html[^>]*>", dom)
    assert html_tag, dom[:500]
    assert 'data-state="ready"' in html_tag.group(0), html_tag.group(0)
    errors = orjson.loads(unescape(re.search(r'data-errors="([^"]*)"', html_tag.group(0)).group(1)))  # type: ignore[union-attr]
    assert errors == []

    statuses = Counter(r.status for r in results)
    jobs = drawn(dom, "chart-jobs")
    assert jobs["points"] == 60
    assert {k: v["sum"] for k, v in jobs["series"].items() if v["sum"]} == statuses

    spend: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    for r in results:
        assert r.routing is not None
        rules[r.routing.rule] += 1
        if r.usage and usd_to_nano(r.usage.cost_usd):
            spend[r.routing.model_served or r.routing.model] += usd_to_nano(r.usage.cost_usd)
    got_spend = {k: usd_to_nano(str(v["sum"])) for k, v in drawn(dom, "chart-spend")["series"].items()}
    assert got_spend.keys() == spend.keys()
    for model, nano in spend.items():
        assert abs(got_spend[model] - nano) <= 2, (model, got_spend[model], nano)  # float rounding only
    assert {k: v["sum"] for k, v in drawn(dom, "chart-rules")["series"].items()} == rules
    latency = drawn(dom, "chart-latency")["series"]
    assert latency["p95"]["points"] >= 1 and latency["p95"]["sum"] >= latency["p50"]["sum"] > 0

    budgets = drawn(dom, "budgets")
    total = sum(usd_to_nano(r.usage.cost_usd) for r in results if r.usage)
    [(line, shown)] = budgets["budgets"].items()
    assert line.startswith("daily|global|") and shown["spent_usd"] == nano_to_usd(total)
    variants = {r.routing.experiment.variant for r in results if r.routing and r.routing.experiment}
    assert drawn(dom, "experiments") == {"rows": len(variants)} and len(variants) == 2
    assert drawn(dom, "queues")["rows"] == 2
    assert drawn(dom, "workers") == {"rows": 1} and f">{worker.proc.pid}<" in dom
    assert shot.exists() and png_colours(shot) > 50


def test_the_token_guards_the_page_and_the_data_but_not_the_library(dashboard: str) -> None:
    assert httpx.get(dashboard).status_code == 401
    assert httpx.get(dashboard + "api/data").status_code == 401
    assert httpx.get(dashboard + "api/data", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(dashboard + "api/data", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "minutes" in ok.json()
    page = httpx.get(f"{dashboard}?token={TOKEN}")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    assert httpx.get(dashboard + "static/uPlot.iife.min.js").status_code == 200
    assert httpx.get(dashboard + "static/../api/data").status_code in (401, 404)
    assert httpx.post(dashboard + "api/data", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405

