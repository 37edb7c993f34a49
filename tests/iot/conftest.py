"""Fixtures of the device twin tests: one embedded server for the module's REST and
WebSocket tests, with a 2 s heartbeat timeout."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests._servers import ServerProcess, running_server

HEARTBEAT_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def iot_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """``manage.py runserver`` of config.settings (embedded), IOT_HEARTBEAT_TIMEOUT=2."""
    env = {"IOT_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT)}
    with running_server(tmp_path_factory.mktemp("iot"), env) as server:
        yield server


def ws_url(server: ServerProcess, device: str, watch: bool = False) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/devices/{device}/" + ("watch/" if watch else "")


def origin(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}"


async def recv_json(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, kind: str, timeout: float) -> tuple[dict, float]:
    """The next message of type ``kind`` (others skipped) and when it arrived."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {kind!r} message within {timeout}s"
        message = await recv_json(ws, left)
        if message.get("type") == kind:
            return message, time.monotonic()


def in_own_loop(test):
    """Run an ``async def`` test with ``asyncio.run`` in a worker thread.

    The session's sync playwright browser (``browser`` fixture) leaves an event loop
    running in the main thread, after which pytest-asyncio cannot start its own there;
    a thread of our own has no loop, so these tests run the same in any order.
    """

    @functools.wraps(test)
    def run(*args, **kwargs):
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, test(*args, **kwargs)).result()

    del run.__wrapped__  # pytest must see a plain function, not the coroutine function
    run.__signature__ = inspect.signature(test)
    return run
