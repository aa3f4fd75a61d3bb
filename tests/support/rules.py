"""Rules files for tests: the shipped rules plus budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.support.procs import REPO


def rules_with_budgets(tmp: Path, budgets: list[dict[str, Any]]) -> Path:
    doc = orjson.loads((REPO / "config" / "rules.json").read_bytes())
    doc["budgets"] = budgets
    path = tmp / "rules.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path
