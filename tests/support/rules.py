"""Rules files for tests: the shipped rules plus budgets, in the timezone under test.

``ROUTEQ_TEST_TIMEZONE`` (set by ``.ci/run`` for its shifted-clock runs) puts the rules file, and
so every budget window, in that zone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from tests.support.procs import REPO


def rules_with_budgets(tmp: Path, budgets: list[dict[str, Any]]) -> Path:
    doc = orjson.loads((REPO / "config" / "rules.json").read_bytes())
    doc["budgets"] = budgets
    doc["timezone"] = os.environ.get("ROUTEQ_TEST_TIMEZONE", doc.get("timezone", "UTC"))
    path = tmp / "rules.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path
