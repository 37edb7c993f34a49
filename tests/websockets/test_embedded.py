"""WebSockets through a real Daphne process in embedded mode, with real clients."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests._servers import ServerProcess, migrate

SETTINGS = "tests.process_settings"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
def server(tmp_path):
    var = tmp_path / "var"
    migrate(var, SETTINGS)
    proc = ServerProcess(var, tmp_path / "server.log", settings=SETTINGS).run()
    yield proc
    proc.cleanup()


def ws_url(server, room: str, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/ws/room/{room}/" + (f"?{query}" if query else "")


async def recv_json(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_accept_echo_tags_attachment_and_broadcast(server):
    async with (
        connect(ws_url(server, "r1", "name=ann")) as ann,
        connect(ws_url(server, "r1", "name=bob")) as bob,
    ):
        await ann.send(json.dumps({"type": "whoami"}))
        me = await recv_json(ann)
        assert me["tags"] == ["ann", "all"] and me["attachment"]["name"] == "ann"
        await bob.send(json.dumps({"type": "broadcast", "text": "hi"}))
        for ws in (ann, bob):
            frame = await recv_json(ws)
            assert frame == {"type": "broadcast", "seq": 1, "text": "hi", "from": "bob"}
        await ann.send(b"abc")
        assert await asyncio.wait_for(ann.recv(), 5) == b"cba"


async def test_rejected_connection_is_refused(server):
    with pytest.raises((InvalidStatus, ConnectionClosed)):
        async with connect(ws_url(server, "r2", "reject=1")) as ws:
            await ws.recv()


async def test_frames_of_a_failed_turn_never_leave(server):
    async with connect(ws_url(server, "r3", "name=x")) as ws:
        await ws.send(json.dumps({"type": "fail"}))
        await ws.send(json.dumps({"type": "echo", "text": "after"}))
        assert await recv_json(ws) == {"type": "echo", "text": "after"}


async def test_client_close_reaches_the_object_and_object_close_reaches_client(server):
    async with connect(ws_url(server, "r4", "name=a")) as a:
        async with connect(ws_url(server, "r4", "name=b")) as b:
            await b.send(json.dumps({"type": "count"}))
            assert (await recv_json(b))["n"] == 2
        # b closed cleanly: the object saw it
        for _ in range(50):
            info = server.get("/t/room/r4/info").body
            if info["closed"]:
                break
            await asyncio.sleep(0.05)
        assert info["closed"] == [["b", 1000, True]] and info["sockets"] == 1
        await a.send(json.dumps({"type": "close"}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(a.recv(), 5)
        assert closed.value.rcvd.code == 4000
    assert server.get("/t/room/r4/info").body["sockets"] == 0


async def test_http_broadcast_reaches_sockets_and_auto_response(server):
    async with connect(ws_url(server, "r5", "name=a")) as a:
        assert server.post("/t/room/r5/broadcast", {"text": "from http"}).body["seq"] == 1
        assert (await recv_json(a))["text"] == "from http"
        await a.send(json.dumps({"type": "auto"}))
        await a.send(json.dumps({"type": "echo", "text": "sync"}))
        assert (await recv_json(a))["text"] == "sync"
        await a.send("ping")
        assert await asyncio.wait_for(a.recv(), 5) == "pong"
