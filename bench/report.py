"""Rows of figures, each next to its baseline from the same run, rendered as markdown and JSON.

A figure alone says little on a shared 2-core box; the same measurement of a baseline taken
minutes apart on the same machine turns it into a ratio that survives the noise better.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "pending", "partial", "failed"]


@dataclass(frozen=True)
class Row:
    """One figure. ``better`` says which direction wins, so the ratio can be read as a verdict."""

    section: str
    figure: str
    value: float | None
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    better: Literal["higher", "lower", ""] = ""
    note: str = ""
    status: Status = "ok"

    @property
    def ratio(self) -> float | None:
        """``value / baseline_value`` (None when either side is missing or zero)."""
        if self.value is None or self.baseline_value in (None, 0) or not _finite(self.value):
            return None
        assert self.baseline_value is not None
        return self.value / self.baseline_value

    def verdict(self) -> str:
        r = self.ratio
        if r is None or not self.better or r <= 0:
            return ""
        gain = r if self.better == "higher" else 1 / r
        if 0.95 <= gain <= 1.05:
            return "≈ same"
        return f"{gain:.2f}× better" if gain > 1 else f"{1 / gain:.2f}× worse"


@dataclass(frozen=True)
class Machine:
    nproc: int
    python: str
    redis_server: str
    platform: str
    date: str

    def line(self) -> str:
        return (
            f"machine: {self.nproc} CPU(s), Python {self.python}, redis-server {self.redis_server}, "
            f"{self.platform}; run at {self.date}"
        )


def machine() -> Machine:
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout
        version = next((w.split("=", 1)[1] for w in out.split() if w.startswith("v=")), out.strip())
    except (OSError, subprocess.SubprocessError):
        version = "unknown"
    return Machine(
        nproc=os.cpu_count() or 0,
        python=sys.version.split()[0],
        redis_server=version,
        platform=platform.platform(),
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or not _finite(value):
        return "–"
    a = abs(value)
    if a >= 1000:
        text = f"{value:,.0f}"
    elif a >= 100:
        text = f"{value:.0f}"
    elif a >= 10:
        text = f"{value:.1f}"
    elif a >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def markdown(rows: Sequence[Row]) -> str:
    head = "| section | figure | routeq | baseline | baseline value | ratio | note |"
    lines = [head, "|---|---|---:|---|---:|---|---|"]
    for r in rows:
        value = fmt(r.value, r.unit) if r.status != "pending" else "pending"
        ratio = f"{r.ratio:.2f} ({r.verdict()})" if r.ratio is not None and r.verdict() else ""
        note = r.note if r.status in ("ok", "pending") else f"[{r.status}] {r.note}".strip()
        cells = [r.section, r.figure, value, r.baseline, fmt(r.baseline_value, r.unit), ratio, note]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def as_json(rows: Sequence[Row], m: Machine, argv: Sequence[str], elapsed_s: float) -> dict[str, Any]:
    return {
        "machine": asdict(m),
        "command": " ".join(argv),
        "elapsed_s": round(elapsed_s, 1),
        "rows": [{**asdict(r), "ratio": r.ratio, "verdict": r.verdict()} for r in rows],
    }


def _finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))
