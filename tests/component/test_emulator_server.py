"""The emulator as a server: concurrency, keep-alive, bad input, the thread runner and the CLI."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import orjson

from worker.emulator import EmulatorThread, serve_emulator

AUTH = {"Authorization": "Bearer sk-or-v1-test"}
BODY = orjson.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
REQUEST = (
    b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: emu\r\nAuthorization: Bearer k\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)
) + BODY


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


async def _one_connection(port: int, requests: int) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    heads = []
    for _ in range(requests):  # several requests on one keep-alive connection
        writer.write(REQUEST)
        head, _ = await _read_response(reader)
        heads.append(head)
    writer.close()
    return heads


async def test_500_concurrent_connections_with_latency() -> None:
    # A raw asyncio client: httpx's pool costs O(connections) per request, which would
    # measure the client rather than the server.
    async with serve_emulator(faults={"models": {"*": {"latency_ms": 200}}}) as emu:
        started = time.monotonic()
        results = await asyncio.gather(*(_one_connection(emu.port, 2) for _ in range(500)))
        elapsed = time.monotonic() - started
        assert all(h.startswith(b"HTTP/1.1 200") for heads in results for h in heads)
        assert emu.stats()["requests_total"] == 1000
    assert elapsed < 4.0  # 2 sequential rounds of 200 ms; generous for slow CI machines


async def test_protocol_errors_and_oversized_bodies() -> None:
    async with serve_emulator() as emu:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        writer.write(b"NOT AN HTTP REQUEST\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400")
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        writer.write(b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: e\r\nContent-Length: 99999999\r\n\r\n")
        head, _ = await _read_response(reader)
        assert head.startswith(b"HTTP/1.1 413")
        writer.close()
        async with httpx.AsyncClient(base_url=emu.base_url, headers=AUTH) as http:
            assert (await http.get("/models")).status_code == 200  # the server is still fine


def test_emulator_thread_for_sync_callers() -> None:
    with EmulatorThread(port=0, faults={"script": {"openai/gpt-4o": ["502"]}}) as emu:
        assert emu.base_url == f"http://127.0.0.1:{emu.port}/api/v1"
        body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=emu.base_url, headers=AUTH) as http:
            assert http.post("/chat/completions", json=body).status_code == 502
            assert http.post("/chat/completions", json=body).status_code == 200
            emu.set_faults({"fail_always": ["openai/gpt-4o"]})
            assert http.post("/chat/completions", json=body).status_code == 502
            assert emu.stats()["requests_total"] == 3
            emu.reset()
            assert emu.stats()["requests_total"] == 0
        port = emu.port
    try:
        httpx.get(f"http://127.0.0.1:{port}/api/v1/models", timeout=1)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the emulator still listens after the thread stopped")


_CLI = (
    "import argparse, sys\n"
    "from worker.cli import emulator_cmd\n"
    "parser = argparse.ArgumentParser()\n"
    "emulator_cmd.register(parser.add_subparsers())\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.func(args))\n"
)


def test_cli_announces_the_real_port_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CLI,
            "emulator",
            "--port",
            "0",
            "--api-key",
            "sk-or-v1-cli",
            "--fail-rate",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:")
        base_url = line.removeprefix("emulator listening on ")
        assert base_url.endswith("/api/v1") and not base_url.endswith(":0/api/v1")
        body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        wrong = httpx.post(f"{base_url}/chat/completions", json=body, headers=AUTH, timeout=5)
        assert wrong.status_code == 401
        resp = httpx.post(
            f"{base_url}/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-or-v1-cli"},
            timeout=5,
        )
        assert resp.status_code in (500, 502, 503)  # --fail-rate 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_a_bad_fault_file(tmp_path: object) -> None:
    from pathlib import Path

    faults = Path(str(tmp_path)) / "faults.json"
    faults.write_text('{"models": {"*": {"error_5xx": 3}}}')
    done = subprocess.run(
        [sys.executable, "-c", _CLI, "emulator", "--port", "0", "--faults", str(faults)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "probability" in done.stderr
