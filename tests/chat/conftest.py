"""Fixtures of the chat tests: real servers of the demo project and real WebSocket clients.

Every server is ``manage.py runserver`` of ``config.settings`` (the project's own routes,
``/ws/chat/<room>/`` included) on a free loopback port. The chat's send limit is per
client IP and every test client is 127.0.0.1, so the protocol server runs with
``CHAT_RATE_LIMIT=0`` (no limit) and the rate-limit tests start their own server.
The cluster fixtures are those of tests/cluster, so all suites share one harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests._servers import ServerProcess, migrate, running_server
from tests.cluster.conftest import cluster, redis_server  # noqa: F401

SETTINGS = "config.settings"


def start_server(
    var: Path, log: Path, env: dict[str, str] | None = None, settings: str = SETTINGS
) -> ServerProcess:
    """A migrated demo server with extra environment, ready to serve."""
    migrate(var, settings)
    return ServerProcess(var, log, settings=settings, env=env).run(30)


@pytest.fixture(scope="session")
def chat_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """One embedded demo server without a chat send limit, shared by the protocol tests
    (each test uses its own room names)."""
    with running_server(tmp_path_factory.mktemp("chat-server"), {"CHAT_RATE_LIMIT": "0"}) as s:
        yield s


# -- clients ------------------------------------------------------------------------------


class ChatClient:
    """A real WebSocket client of ``/ws/chat/<room>/``; a reader task keeps every frame.

    ``expect(kind)`` returns (and consumes) the oldest unconsumed frame of that type at or
    after ``floor``, so tests read each stream in order without losing frames that
    arrive early; ``request`` moves the floor to "after what is here now".
    """

    def __init__(self, conn: ClientConnection, label: str) -> None:
        self.conn = conn
        self.label = label
        self.frames: list[dict[str, Any]] = []
        self.floor = 0
        self.consumed: set[int] = set()
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._arrived = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: ServerProcess, room: str, label: str = "") -> ChatClient:
        conn = await connect(
            f"ws://127.0.0.1:{server.port}/ws/chat/{room}/",
            origin=f"http://127.0.0.1:{server.port}",  # the project checks the Origin
            proxy=None,
            open_timeout=20,
            close_timeout=5,
            ping_interval=None,
            max_size=None,
        )
        return cls(conn, label or room)

    @classmethod
    async def join(
        cls,
        server: ServerProcess,
        room: str,
        name: str,
        since: int | None = None,
        client_id: str | None = None,
    ) -> ChatClient:
        """Connect and say hello; returns once ``ready`` came (the backlog is in
        ``client.backlog``, the roster in ``client.roster``)."""
        client = await cls.open(server, room, f"{name}@{room}")
        await client.hello(name, since, client_id)
        return client

    async def hello(
        self, name: str, since: int | None = None, client_id: str | None = None
    ) -> dict:
        hello: dict[str, Any] = {"type": "hello", "name": name}
        if since is not None:
            hello["since"] = since
        if client_id is not None:
            hello["client_id"] = client_id
        await self.send(hello)
        self.floor = len(self.frames)
        self.roster = await self.expect("roster")
        start = self.frames.index(self.roster)
        self.ready = await self.expect("ready", timeout=30)
        end = self.frames.index(self.ready)
        self.backlog = [f for f in self.frames[start:end] if f["type"] == "msg"]
        self.consumed.update(range(start, end))
        return self.ready

    async def _read(self) -> None:
        try:
            while True:
                raw = await self.conn.recv()
                self.frames.append(json.loads(raw))
                self._arrived.set()
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
        finally:
            self.closed.set()
            self._arrived.set()

    async def send(self, message: dict | str | bytes) -> None:
        await self.conn.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def expect(
        self, kind: str, timeout: float = 15, where: Callable[[dict], bool] | None = None
    ) -> dict:
        """The oldest unconsumed frame of type ``kind`` (matching ``where``)."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(self.floor, len(self.frames)):
                frame = self.frames[i]
                if i in self.consumed or frame.get("type") != kind:
                    continue
                if where is None or where(frame):
                    self.consumed.add(i)
                    return frame
            if self.closed.is_set():
                raise AssertionError(f"{self.label}: closed ({self.close_code}) before {kind!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.label}: no {kind!r} frame within {timeout}s; got {self.frames[-5:]}"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.5))

    def frames_of(self, kind: str) -> list[dict]:
        return [f for f in self.frames if f.get("type") == kind]

    async def say(self, text: str, client_msg_id: str | None = None, timeout: float = 15) -> int:
        """Send a message and return the id of its ack."""
        message: dict[str, Any] = {"type": "send", "text": text}
        if client_msg_id is not None:
            message["client_msg_id"] = client_msg_id
        await self.send(message)
        ack = await self.expect(
            "ack", timeout, where=lambda f: f.get("client_msg_id") == client_msg_id
        )
        return ack["id"]

    async def request(self, message: dict, kind: str, timeout: float = 15) -> dict:
        """Send ``message`` and return the next frame of type ``kind``."""
        self.floor = len(self.frames)
        await self.send(message)
        return await self.expect(kind, timeout)

    async def close(self) -> None:
        await self.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reader, 10)


@contextlib.asynccontextmanager
async def clients(*opening) -> Any:
    """Open several clients (awaitables of ChatClient) and close them all at the end."""
    made = []
    try:
        for pending in opening:
            made.append(await pending)
        yield made
    finally:
        for client in made:
            with contextlib.suppress(Exception):
                await client.close()
