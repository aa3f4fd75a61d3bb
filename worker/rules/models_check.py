"""Every model id a rules document names must be in the model catalog.

A typo (``openai/gpt-5-typo``) would otherwise pass validation and fail every matching job at
run time with ``invalid_model``. Each unknown id is reported at its JSON path with the nearest
known id as a hint; ``"allow_unknown_models": true`` at the top of the document opts out (for
models newer than the catalog snapshot).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from worker.catalog import Catalog
from worker.rules.problems import Problem, child_path


def unknown_models(doc: Mapping[str, Any], catalog: Catalog) -> list[Problem]:
    if doc.get("allow_unknown_models") is True or not len(catalog):
        return []
    known = catalog.ids()
    problems = []
    for where, model in _mentions(doc):
        if model in catalog:
            continue
        near = difflib.get_close_matches(model, known, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        problems.append(Problem(where, f"model {model!r} is not in the model catalog{hint} "
                                "(set \"allow_unknown_models\": true to allow it)"))
    return problems


def _mentions(doc: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(JSON path, model id) of every model id the document names (ids contain '/'; anything
    else is reported by the loader as not a model id)."""
    tiers = doc.get("tiers")
    if isinstance(tiers, Mapping):
        for name, model in tiers.items():
            if isinstance(model, str) and "/" in model:
                yield child_path("$.tiers", str(name)), model
    rules = doc.get("rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else ()):
        yield from _model_fields(rule, f"$.rules[{i}]")
    experiments = doc.get("experiments")
    for i, exp in enumerate(experiments if isinstance(experiments, list) else ()):
        variants = exp.get("variants") if isinstance(exp, Mapping) else None
        for j, variant in enumerate(variants if isinstance(variants, list) else ()):
            yield from _model_fields(variant, f"$.experiments[{i}].variants[{j}]")


def _model_fields(item: Any, where: str) -> Iterator[tuple[str, str]]:
    """A rule's or a variant's ``model`` and ``fallbacks`` that look like model ids."""
    if not isinstance(item, Mapping):
        return
    if isinstance(item.get("model"), str) and "/" in item["model"]:
        yield f"{where}.model", item["model"]
    fallbacks = item.get("fallbacks")
    for j, entry in enumerate(fallbacks if isinstance(fallbacks, list) else ()):
        if isinstance(entry, str) and "/" in entry:
            yield f"{where}.fallbacks[{j}]", entry
