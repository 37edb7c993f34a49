"""WebSocket records and limits on the owner's side, driven in-process (DESIGN §9).

Real clients through Daphne are in tests/websockets/; here the connect/close events are
sent through the router as a front would, to check the owner's bookkeeping directly.
"""

from __future__ import annotations

import json

import pytest

from durable_core.exceptions import InvalidArgument, StorageError, StorageLimitExceeded
from durable_core.registry import get_namespace
from durable_core.router import get_router
from durable_core.testing import evict, object_host
from tests import objects  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def connect_payload(ws_id: str, front: str, **kwargs: str) -> str:
    request = {
        "path": "/ws/",
        "kwargs": kwargs,
        "query_string": "",
        "headers": {},
        "client": "127.0.0.1",
        "user": None,
    }
    return json.dumps({"ws": ws_id, "front": front, "request": request})


async def connect(stub, ws_id: str, front: str, **kwargs: str) -> dict:
    payload = connect_payload(ws_id, front, **kwargs)
    return await get_router().send_event(stub.id, "connect", payload, lifecycle=True)


async def test_sockets_survive_eviction_and_close_events_remove_them(tmp_path):
    async with object_host(tmp_path / "o") as host:
        room = get_namespace("tests.Sockets").get_by_name("r")
        assert (await connect(room, "a", host.host_id))["accepted"] is True
        assert (await connect(room, "b", host.host_id))["accepted"] is True
        assert await evict(room)
        assert (await room.state())["sockets"] == ["a", "b"]  # hibernation kept them
        close = json.dumps({"ws": "a", "code": 1000, "reason": "", "clean": True})
        await get_router().send_event(room.id, "close", close, lifecycle=True)
        state = await room.state()
        assert state["sockets"] == ["b"] and state["closed"] == [["a", 1000, True]]


async def test_sockets_of_a_dead_front_are_closed_unclean_on_activation(tmp_path):
    async with object_host(tmp_path / "o"):
        room = get_namespace("tests.Sockets").get_by_name("dead-front")
        # A socket held by a front that no longer exists (a previous process).
        assert (await connect(room, "old", "gone-host:1:x"))["accepted"] is True
        assert await evict(room)
        state = await room.state()  # activation notices the dead front first
        assert state["sockets"] == []
        assert state["closed"] == [["old", 1006, False]]
        assert state["errors"] == [["old", 1006, "WebSocketError"]]


async def test_failed_sockets_are_reported_as_errors_before_their_close(tmp_path):
    async with object_host(tmp_path / "o") as host:
        room = get_namespace("tests.Sockets").get_by_name("errors")
        for ws_id, code, clean in (("ok", 1000, True), ("away", 4001, True), ("big", 1009, True)):
            assert (await connect(room, ws_id, host.host_id))["accepted"] is True
            close = json.dumps({"ws": ws_id, "code": code, "reason": "", "clean": clean})
            await get_router().send_event(room.id, "close", close, lifecycle=True)
        state = await room.state()
        # Normal and application closes are not errors; a frame too big (1009) is.
        assert state["errors"] == [["big", 1009, "WebSocketError"]]
        assert [c[0] for c in state["closed"]] == ["ok", "away", "big"]


async def test_a_raising_error_handler_is_undone_and_the_close_handler_still_runs(tmp_path):
    async with object_host(tmp_path / "o") as host:
        room = get_namespace("tests.Sockets").get_by_name("raising")
        assert (await connect(room, "raise-1", host.host_id))["accepted"] is True
        close = json.dumps({"ws": "raise-1", "code": 1006, "reason": "", "clean": False})
        await get_router().send_event(room.id, "close", close, lifecycle=True)
        state = await room.state()
        assert state["sockets"] == []  # the socket is gone whatever the handlers did
        assert state["errors"] == []  # the raising handler's own write was undone
        assert state["closed"] == [["raise-1", 1006, False]]  # and the close handler ran


async def test_tag_and_attachment_limits(tmp_path):
    async with object_host(tmp_path / "o") as host:
        room = get_namespace("tests.Sockets").get_by_name("limits")
        too_many = ",".join(f"t{i}" for i in range(11))
        with pytest.raises(InvalidArgument, match="at most 10 tags"):
            await connect(room, "a", host.host_id, tags=too_many)
        with pytest.raises(InvalidArgument, match="tags are strings"):
            await connect(room, "b", host.host_id, tags="x" * 257)
        with pytest.raises(StorageLimitExceeded, match="attachments"):
            await connect(room, "c", host.host_id, attachment="3000")
        assert (await connect(room, "d", host.host_id, tags="a,b", attachment="100"))["accepted"]
        assert (await room.state())["sockets"] == ["d"]  # the refused ones left nothing


async def test_frames_cannot_be_sent_while_the_gate_is_open(tmp_path):
    async with object_host(tmp_path / "o") as host:
        room = get_namespace("tests.Sockets").get_by_name("gate")
        await connect(room, "a", host.host_id)
        with pytest.raises(StorageError, match="inside a turn"):
            await room.send_outside()
