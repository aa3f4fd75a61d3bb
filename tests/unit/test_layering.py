"""The house rules of the code base, checked: who may import whom.

- ``producer_client`` is what a web backend installs: nothing from ``worker``, arq or httpx.
- The pure core (rules, classification, tokens, money, budget definitions) does no I/O: it
  imports neither redis nor httpx, so it is tested and benchmarked alone.
- The command line builds its parser without the worker side installed.
- No import cycle between modules (every import counts: top level, inside functions, and
  ``TYPE_CHECKING`` blocks alike).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import REPO

PACKAGES = ("worker", "producer_client")
WORKER_SIDE = ("worker", "arq", "httpx", "aiohttp", "h11")
NETWORK = ("redis", "httpx", "aiohttp", "arq")
PURE_CORE = (
    "worker.rules",
    "worker.classify",
    "worker.tokens",
    "producer_client.money",
    "worker.budget",
    "worker.catalog",
    "worker.eligibility",
)


def imported_after(statement: str) -> set[str]:
    """Top-level module names in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    code = f"{statement}\nimport sys\nprint('\\n'.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_producer_client_imports_nothing_of_the_worker_side() -> None:
    loaded = imported_after("import producer_client, producer_client.sync, producer_client.batch")
    assert loaded & set(WORKER_SIDE) == set()


@pytest.mark.parametrize("module", PURE_CORE)
def test_the_pure_core_does_no_io(module: str) -> None:
    assert imported_after(f"import {module}") & set(NETWORK) == set()


def test_the_command_line_parser_builds_without_the_worker_side() -> None:
    loaded = imported_after("from worker.cli.main import build_parser; build_parser()")
    assert loaded & {"arq", "httpx", "aiohttp", "h11", "fakeredis"} == set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of ours that ``path`` imports anywhere."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # ``from pkg import sub`` depends on the submodule; ``from mod import name`` on mod.
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in known}
    found.discard(name)
    return found


def test_no_import_cycles() -> None:
    files = {_module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    known = set(files)
    graph = {name: _imports(path, name, known) for name, path in files.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
