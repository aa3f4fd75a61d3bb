"""The OpenRouter emulator: OpenRouter's HTTP API on loopback, with faults on demand.

Names are imported on first use, so reading a fault file does not load the HTTP server.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.emulator.app import EmulatorApp
    from worker.emulator.faults import FaultConfig, FaultConfigError, FaultProfile
    from worker.emulator.runner import EmulatorThread, RunningEmulator, serve_emulator

_HOME = {
    "EmulatorApp": "app",
    "FaultConfig": "faults",
    "FaultConfigError": "faults",
    "FaultProfile": "faults",
    "EmulatorThread": "runner",
    "RunningEmulator": "runner",
    "serve_emulator": "runner",
}

__all__ = [
    "EmulatorApp",
    "EmulatorThread",
    "FaultConfig",
    "FaultConfigError",
    "FaultProfile",
    "RunningEmulator",
    "serve_emulator",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'worker.emulator' has no attribute {name!r}")
    return getattr(import_module(f"worker.emulator.{home}"), name)
