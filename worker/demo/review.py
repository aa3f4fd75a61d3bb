"""The adaptive demo's review steps, with the analytics the commands use: ``routeq report
experiment NAME`` and ``routeq suggest`` (same readers, same report and suggestion builders,
same printed tables), over the demo's own prefix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.analytics.active_rules import active_rules
from worker.analytics.experiment_read import read_experiment
from worker.analytics.rollups import RollupReader
from worker.analytics.suggest import Settings, Suggestion, apply_edits, suggest
from worker.analytics.window import Window
from worker.catalog import Catalog
from worker.cli.report_cmd import experiment_json, experiment_lines
from worker.cli.suggest_cmd import suggestion_json, suggestion_lines
from worker.rules import compile_rules


@dataclass(frozen=True)
class ExperimentStep:
    lines: list[str]
    doc: dict[str, Any]


async def report_experiment(redis: Redis, keys: Keys, name: str, span: Window) -> ExperimentStep:
    """What ``routeq report experiment NAME`` prints, for this window."""
    rules, rollup, report = await read_experiment(redis, keys, name, span)
    return ExperimentStep(experiment_lines(report, rules.source, span.describe()),
                          experiment_json(report, rules.source, rollup))


@dataclass(frozen=True)
class SuggestStep:
    lines: list[str]
    suggestions: list[Suggestion]
    doc: dict[str, Any] | None  # the rules document with the proposed routes; None: none proposed

    def about(self, task_type: str, rule: str) -> Suggestion | None:
        return next((s for s in self.suggestions if (s.task_type, s.rule) == (task_type, rule)), None)

    def as_json(self) -> list[dict[str, Any]]:
        return [suggestion_json(s) for s in self.suggestions]


async def suggest_routes(redis: Redis, keys: Keys, span: Window, settings: Settings,
                         catalog: Catalog) -> SuggestStep:
    """What ``routeq suggest --write`` proposes and writes, for this window."""
    active = await active_rules(redis, keys)
    rollup = await RollupReader(redis, keys).read(span.since, span.until, ("task_type", "rule", "model"))
    ruleset = compile_rules(active.doc, source=active.source)
    found = suggest(ruleset, active.doc, rollup.groups, catalog, settings)
    routes = [s.edit for s in found if s.action == "route" and s.edit is not None]
    doc = apply_edits(active.doc, routes) if routes else None
    return SuggestStep(suggestion_lines(found), found, doc)


def indent(lines: Sequence[str], by: str = "  ") -> list[str]:
    return [by + line if line else line for line in lines]
