"""Every ``routeq`` command starts fast: the parser loads no heavy library and no worker module.

Importing redis, pydantic and the worker side used to cost every command (``--help`` included)
about 0.6 s before it did anything. Command modules now import those inside the command, and
``main()`` recognises the errors it reports in one line without importing their modules. Checked
in fresh interpreters, since this process has long imported everything.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.procs import REPO
from worker.cli import exits
from worker.cli import main as cli

#: The slow imports (each tens to hundreds of ms) no command may pay for before it runs.
HEAVY = ("redis", "hiredis", "pydantic", "pydantic_core", "arq", "httpx", "aiohttp", "fakeredis", "lupa",
         "asyncio")
MARKER = "-- modules:"


def loaded_after(code: str) -> set[str]:
    """Module names in ``sys.modules`` after running ``code`` in a fresh interpreter (whatever
    ``code`` prints comes before the marker line)."""
    script = f"{code}\nimport sys\nprint('{MARKER}', *sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.rsplit(MARKER, 1)[1].split())


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY}


def test_building_the_parser_loads_no_heavy_library_and_no_worker_module() -> None:
    modules = loaded_after("from worker.cli.main import build_parser\nbuild_parser()")
    assert heavy(modules) == set()
    assert {m for m in modules if m.startswith("worker.") and not m.startswith("worker.cli")} == set()


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["report", "--help"], ["rules", "push", "-h"]])
def test_help_and_version_load_no_heavy_library(argv: list[str]) -> None:
    code = f"from worker.cli.main import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert heavy(loaded_after(code)) == set()


def test_version_is_the_installed_one_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code in (0, None)
    assert capsys.readouterr().out == f"routeq {version('routeq')}\n"


# -- main() still reports each known error in one line, with its exit code -----------------------


def _redis_error() -> BaseException:
    from redis.exceptions import ConnectionError as RedisConnectionError

    return RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")


def _redis_unavailable() -> BaseException:
    from producer_client.errors import RedisUnavailable

    return RedisUnavailable("Redis at 127.0.0.1:1 did not answer within 2 s")


def _catalog_error() -> BaseException:
    from worker.catalog import CatalogError

    return CatalogError("models.json: not a JSON object")


def _settings_error() -> BaseException:
    from producer_client.envvars import SettingsError

    return SettingsError("ROUTEQ_PREFIX: must not be empty")


def _missing_worker_side() -> BaseException:
    return ModuleNotFoundError("No module named 'arq'", name="arq")


@pytest.fixture()
def raising(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[BaseException], None]]:
    """A one-command CLI whose command raises the given exception."""
    holder: list[BaseException] = []

    def command(args: argparse.Namespace) -> int:
        raise holder[0]

    def register(sub: Any) -> None:
        p = sub.add_parser("boom")
        p.add_argument("--redis")
        p.set_defaults(func=command)

    module = types.ModuleType("boom_cmd")
    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "boom_cmd", module)
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("boom_cmd",))
    yield holder.append


@pytest.mark.parametrize(("make", "code", "says"), [
    (_settings_error, exits.USAGE, "routeq boom: ROUTEQ_PREFIX: must not be empty"),
    (_redis_unavailable, exits.REDIS, "routeq boom: Redis at 127.0.0.1:1 did not answer"),
    (_redis_error, exits.REDIS, "routeq boom: Redis at redis://user:***@127.0.0.1:1/0: Error 111"),
    (_catalog_error, exits.USAGE, "routeq boom: model catalog: models.json: not a JSON object"),
    (_missing_worker_side, exits.NEEDS_WORKER, "routeq boom: needs the worker side (arq is not installed)"),
])
def test_known_errors_are_one_line_with_their_exit_code(
    raising: Callable[[BaseException], None], capsys: pytest.CaptureFixture[str],
    make: Callable[[], BaseException], code: int, says: str,
) -> None:
    raising(make())
    assert cli.main(["boom", "--redis", "redis://user:secret@127.0.0.1:1/0"]) == code
    err = capsys.readouterr().err
    assert err.startswith(says) and err.count("\n") == 1 and "secret" not in err


def test_any_other_error_keeps_its_traceback(raising: Callable[[BaseException], None]) -> None:
    raising(ModuleNotFoundError("No module named 'yaml'", name="yaml"))
    with pytest.raises(ModuleNotFoundError):
        cli.main(["boom"])
