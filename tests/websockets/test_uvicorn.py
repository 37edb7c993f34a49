"""WebSockets served by uvicorn (the production server of the README) in embedded mode:
DurableLifespan starts the host, close codes of any range reach the client, and the
consumers' flood budget closes a flooding client with 1013 there too (no Daphne adapter)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests._servers import ROOT, free_port, http, migrate, server_env

SETTINGS = "tests.process_settings"
UVICORN = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--no-access-log"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
def uvicorn_url(tmp_path: Path):
    var = tmp_path / "var"
    migrate(var, SETTINGS)
    port = free_port()
    log = open(tmp_path / "uvicorn.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [*UVICORN, "tests.process_app.asgi:application", "--port", str(port)],
        cwd=ROOT,
        env=server_env(var, SETTINGS),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if http("GET", f"http://{url}/healthz").status == 200:
                    break
            assert process.poll() is None, (tmp_path / "uvicorn.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "uvicorn.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


async def test_echo_and_an_object_close_code_reach_the_client(uvicorn_url):
    async with connect(f"ws://{uvicorn_url}/ws/room/u1/?name=ann") as ws:
        await ws.send(json.dumps({"type": "echo", "text": "hi"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "echo", "text": "hi"}
        await ws.send(json.dumps({"type": "close"}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert (ws.close_code, ws.close_reason) == (4000, "bye")


async def test_a_client_flooding_past_its_budget_is_closed_1013(uvicorn_url):
    async with connect(f"ws://{uvicorn_url}/ws/room/u2/?name=flood") as ws:
        with contextlib.suppress(ConnectionClosed):
            for _ in range(3000):
                await ws.send(json.dumps({"type": "noop"}))
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 20)
        assert ws.close_code == 1013
