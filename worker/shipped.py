"""The policy files shipped inside the package: default rules, the offline model catalog, examples.

They are package data (``worker/defaults`` is the repository's ``config/`` directory), read through
:mod:`importlib.resources`, so a wheel installed anywhere finds them. ``ROUTEQ_RULES`` and
``ROUTEQ_CATALOG`` point at a user's own copies, which ``routeq config init DIR`` writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

RULES = "rules.json"
CATALOG = "models.json"
RULES_ENV = "ROUTEQ_RULES"
CATALOG_ENV = "ROUTEQ_CATALOG"

#: A policy file: a user's path, or a file inside the installed package.
PolicyFile = Path | Traversable


def shipped(name: str) -> Traversable:
    """A file of the package's ``defaults`` folder (``rules.json``, ``examples/…``)."""
    return resources.files("worker").joinpath("defaults", *name.split("/"))


def shipped_examples() -> list[str]:
    """Names of the example rules files (``examples/model-routing.json`` …)."""
    folder = shipped("examples")
    if not folder.is_dir():
        return []
    return sorted(f"examples/{f.name}" for f in folder.iterdir() if f.name.endswith(".json"))


def _chosen(env: Mapping[str, str] | None, var: str, default: str) -> PolicyFile:
    value = (os.environ if env is None else env).get(var, "")
    return Path(value) if value else shipped(default)


def as_policy_file(path: str | os.PathLike[str] | PolicyFile) -> PolicyFile:
    """A path given as text becomes a Path; package files stay as they are."""
    return Path(path) if isinstance(path, str | os.PathLike) else path


def rules_file(env: Mapping[str, str] | None = None) -> PolicyFile:
    """``$ROUTEQ_RULES`` if set, else the shipped rules."""
    return _chosen(env, RULES_ENV, RULES)


def catalog_file(env: Mapping[str, str] | None = None) -> PolicyFile:
    """``$ROUTEQ_CATALOG`` if set, else the shipped model catalog."""
    return _chosen(env, CATALOG_ENV, CATALOG)

