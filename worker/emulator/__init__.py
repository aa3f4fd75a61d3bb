"""routeq's OpenRouter emulator: a loopback HTTP server with OpenRouter's shapes and faults."""

from worker.emulator.app import EmulatorApp
from worker.emulator.faults import FaultConfig, FaultConfigError, FaultProfile
from worker.emulator.runner import EmulatorThread, RunningEmulator, serve_emulator

__all__ = [
    "EmulatorApp",
    "EmulatorThread",
    "FaultConfig",
    "FaultConfigError",
    "FaultProfile",
    "RunningEmulator",
    "serve_emulator",
]
