"""Hostile input found by probing the running chat: lone surrogates, message ids beyond
SQLite's int64, floats as ids and JSON nested past the stack. Each is answered with the
contract's error (400 over REST, an ``error`` frame over the WebSocket), the room keeps
its messages and the socket stays usable."""

from __future__ import annotations

import pytest

from tests.chat.conftest import ChatClient, clients

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

LONE_SURROGATE = "\ud800"  # json.dumps sends it as the escape "\ud800"


def assert_error(result, status: int, code: str) -> None:
    assert result.status == status, result
    assert result.body["error"] == code and result.body["message"], result


async def error_for(ws: ChatClient, message) -> dict:
    ws.floor = len(ws.frames)
    await ws.send(message)
    frame = await ws.expect("error")
    assert frame["message"], frame
    return frame


async def test_rest_lone_surrogates_are_400_and_the_room_keeps_its_messages(chat_server):
    base = "/api/chat/rooms/surrogate-rest/messages"
    first = chat_server.post(base, {"name": "a", "text": "kept"})
    assert first.status == 201, first
    bad_text = chat_server.post(base, {"name": "a", "text": LONE_SURROGATE})
    assert_error(bad_text, 400, "bad_request")
    mixed = chat_server.post(base, {"name": "a", "text": "ok " + LONE_SURROGATE + " ok"})
    assert_error(mixed, 400, "bad_request")
    bad_name = chat_server.post(base, {"name": "a" + LONE_SURROGATE, "text": "x"})
    assert_error(bad_name, 400, "bad_name")
    bad_cmid = chat_server.post(base, {"name": "a", "text": "x", "client_msg_id": LONE_SURROGATE})
    assert_error(bad_cmid, 400, "bad_request")
    # The room was not reset: the stored message is there, ids go on from it.
    assert chat_server.get("/api/chat/rooms/surrogate-rest").body["messages"] == 1
    second = chat_server.post(base, {"name": "a", "text": "after"})
    assert second.status == 201 and second.body["id"] > first.body["id"], second


async def test_websocket_lone_surrogates_get_error_frames(chat_server):
    async with clients(ChatClient.join(chat_server, "surrogate-ws", "ann")) as (ann,):
        frame = await error_for(
            ann, {"type": "send", "text": LONE_SURROGATE, "client_msg_id": "s1"}
        )
        assert (frame["code"], frame["client_msg_id"]) == ("bad_request", "s1")
        # An id that is not valid Unicode is refused and not echoed (it cannot be sent).
        frame = await error_for(
            ann, {"type": "send", "text": "x", "client_msg_id": "c" + LONE_SURROGATE}
        )
        assert frame["code"] == "bad_request" and "client_msg_id" not in frame
        ann.floor = len(ann.frames)
        assert await ann.say("still here", "s2") == 1
        assert ann.close_code is None
    async with clients(ChatClient.open(chat_server, "surrogate-ws")) as (bob,):
        frame = await error_for(bob, {"type": "hello", "name": "b" + LONE_SURROGATE})
        assert frame["code"] == "bad_name"
        await bob.hello("bob")
        assert [m["text"] for m in bob.backlog] == ["still here"]


async def test_message_ids_beyond_int64_are_bad_requests_over_rest(chat_server):
    base = "/api/chat/rooms/big-ids/messages"
    assert chat_server.post(base, {"name": "a", "text": "one"}).status == 201
    for before in ("99999999999999999999999", str(2**63), "1e30"):
        assert_error(chat_server.get(f"{base}?before={before}"), 400, "bad_request")
    page = chat_server.get(f"{base}?before={2**63 - 1}")  # the largest id still reads
    assert page.status == 200 and [m["text"] for m in page.body["messages"]] == ["one"]


async def test_message_ids_beyond_int64_or_floats_are_answered_over_websockets(chat_server):
    async with clients(ChatClient.join(chat_server, "big-ids-ws", "ann")) as (ann,):
        await ann.say("one", "c1")
        for before in (10**30, 2**63, 1e30, 1.5):
            frame = await error_for(ann, {"type": "history", "before": before})
            assert frame["code"] == "bad_request", (before, frame)
        page = await ann.request({"type": "history", "before": 2**63 - 1}, "history")
        assert [m["text"] for m in page["messages"]] == ["one"]
    async with clients(ChatClient.open(chat_server, "big-ids-ws")) as (bob,):
        for since in (10**30, 1e30):
            frame = await error_for(bob, {"type": "hello", "name": "bob", "since": since})
            assert frame["code"] == "bad_request", (since, frame)
        await bob.hello("bob", since=0)  # a valid hello is still served: roster, ready
        assert [m["text"] for m in bob.backlog] == ["one"]


async def test_json_nested_past_the_stack_is_a_bad_request_and_the_socket_stays(chat_server):
    async with clients(ChatClient.open(chat_server, "deep-json")) as (ws,):
        for frame_text in ("[" * 60_000, '{"a":' * 12_000):  # both under the 64 KB limit
            assert (await error_for(ws, frame_text))["code"] == "bad_request"
        await ws.hello("ann")
        assert await ws.say("after the deep frames", "d1") == 1
        assert ws.close_code is None
