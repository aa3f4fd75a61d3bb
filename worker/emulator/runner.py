"""Ways to run the emulator: an async context manager, a background thread, or until a signal.

Example::

    async with serve_emulator(port=0, faults={"script": {...}}) as emu:
        client = httpx.AsyncClient(base_url=emu.base_url)

    with EmulatorThread(port=0) as emu:   # sync callers (demo, benchmarks)
        requests_to(emu.base_url)
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

from worker.catalog import Catalog
from worker.emulator.app import EmulatorApp
from worker.emulator.faults import FaultConfig
from worker.emulator.http import HttpServer

FaultsArg = FaultConfig | Mapping[str, Any] | str | os.PathLike[str] | None
_T = TypeVar("_T")


def fault_config(faults: FaultsArg) -> FaultConfig:
    """Accept a parsed config, a fault document, or the path of a fault file."""
    if faults is None:
        return FaultConfig()
    if isinstance(faults, FaultConfig):
        return faults
    if isinstance(faults, Mapping):
        return FaultConfig.from_dict(faults)
    return FaultConfig.load(faults)


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """A listening emulator; its methods must be called on the emulator's event loop."""

    app: EmulatorApp
    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/api/v1"

    def set_faults(self, faults: FaultsArg) -> None:
        self.app.set_faults(fault_config(faults))

    def stats(self) -> dict[str, Any]:
        return self.app.snapshot()

    def reset(self) -> None:
        self.app.reset()


@asynccontextmanager
async def serve_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultsArg = None,
    api_key: str | Sequence[str] | None = None,
    catalog: Catalog | None = None,
    credit_limit: Decimal | str | None = None,
) -> AsyncIterator[RunningEmulator]:
    """Listen on ``host:port`` (0 = a free port) for the duration of the block."""
    app = EmulatorApp(
        catalog if catalog is not None else Catalog.load(),
        fault_config(faults),
        api_key=api_key,
        credit_limit=Decimal(credit_limit) if credit_limit is not None else None,
    )
    server = HttpServer(app)
    await server.start(host, port)
    try:
        yield RunningEmulator(app, host, server.port)
    finally:
        await server.close()


async def run_until_signal(on_ready: Callable[[RunningEmulator], None], **options: Any) -> None:
    """Serve until SIGINT or SIGTERM (the CLI's main loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_emulator(**options) as emulator:
        on_ready(emulator)
        await stop.wait()


class EmulatorThread:
    """The emulator on its own event loop in a daemon thread, for synchronous callers."""

    def __init__(self, *, startup_timeout_s: float = 10.0, **options: Any) -> None:
        self._options = options
        self._timeout = startup_timeout_s
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="routeq-emulator", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._emulator: RunningEmulator | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError("the emulator did not start in time")
        if self._error is not None:
            raise RuntimeError("the emulator failed to start") from self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self._timeout)

    @property
    def emulator(self) -> RunningEmulator:
        if self._emulator is None:
            raise RuntimeError("the emulator is not running")
        return self._emulator

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def port(self) -> int:
        return self.emulator.port

    def set_faults(self, faults: FaultsArg) -> None:
        config = fault_config(faults)  # parse errors surface in the caller's thread
        self._call(lambda: self.emulator.app.set_faults(config))

    def stats(self) -> dict[str, Any]:
        return self._call(self.emulator.stats)

    def reset(self) -> None:
        self._call(self.emulator.reset)

    def _call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the emulator's loop, so its state is only touched from one thread."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        return asyncio.run_coroutine_threadsafe(_as_coroutine(fn), self._loop).result(self._timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to __enter__ when startup fails
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with serve_emulator(**self._options) as emulator:
            self._emulator = emulator
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._stop.wait()


def _as_coroutine(fn: Callable[[], _T]) -> Coroutine[Any, Any, _T]:
    async def call() -> _T:
        return fn()

    return call()
