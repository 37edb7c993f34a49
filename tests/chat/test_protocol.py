"""The chat WebSocket protocol (CONTRACT § Chat) through real sockets to a real server.

Every test talks to ``chat_server`` (``manage.py runserver`` of the demo project, no send
limit) with the ``websockets`` client, in rooms of its own.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.chat.conftest import ChatClient, clients

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


async def send_many(client: ChatClient, texts: list[str], prefix: str) -> list[int]:
    """Send ``texts`` pipelined (client_msg_id ``prefix-i``); returns the acked ids."""
    for i, text in enumerate(texts):
        await client.send({"type": "send", "text": text, "client_msg_id": f"{prefix}-{i}"})
    ids = []
    for i in range(len(texts)):
        ack = await client.expect("ack", where=lambda f, i=i: f["client_msg_id"] == f"{prefix}-{i}")
        ids.append(ack["id"])
    return ids


async def test_messages_typing_and_presence_stay_in_their_room(chat_server):
    async with clients(
        ChatClient.join(chat_server, "iso-a", "ann"),
        ChatClient.join(chat_server, "iso-a", "amy"),
        ChatClient.join(chat_server, "iso-b", "bob"),
    ) as (ann, amy, bob):
        await ann.send({"type": "typing"})
        assert await amy.expect("typing") == {"type": "typing", "name": "ann"}
        msg_id = await ann.say("only for room a", "a1")
        for client in (ann, amy):
            msg = await client.expect("msg")
            assert (msg["id"], msg["text"], msg["name"]) == (msg_id, "only for room a", "ann")
        # bob's own message is his sentinel: whatever room a sent came before it.
        await bob.say("only for room b", "b1")
        assert [m["text"] for m in bob.frames_of("msg")] == ["only for room b"]
        assert bob.frames_of("typing") == [] and bob.frames_of("joined") == []
        assert bob.roster["users"] == []
        await asyncio.sleep(0.3)  # room b's message, if it leaked, would be here by now
        for client in (ann, amy):
            assert [m["text"] for m in client.frames_of("msg")] == ["only for room a"]


async def test_backlog_is_exactly_the_last_100_of_150_and_history_pages_to_the_other_50(
    chat_server,
):
    async with clients(ChatClient.join(chat_server, "backlog", "writer")) as (writer,):
        ids = await send_many(writer, [f"message {i}" for i in range(150)], "w")
        assert ids == sorted(ids) and len(set(ids)) == 150
        async with clients(ChatClient.join(chat_server, "backlog", "reader")) as (reader,):
            assert reader.roster["users"] == ["writer"]
            assert [m["id"] for m in reader.backlog] == ids[50:]
            assert [m["text"] for m in reader.backlog] == [f"message {i}" for i in range(50, 150)]
            assert "truncated" not in reader.ready
            page = await reader.request(
                {"type": "history", "before": reader.backlog[0]["id"], "limit": 100}, "history"
            )
            assert [m["id"] for m in page["messages"]] == ids[:50]
            assert page["has_more"] is False
            # The same 50 in pages of 30 and 20, newest page first, oldest first inside.
            newer = await reader.request(
                {"type": "history", "before": ids[50], "limit": 30}, "history"
            )
            assert [m["id"] for m in newer["messages"]] == ids[20:50] and newer["has_more"]
            older = await reader.request(
                {"type": "history", "before": ids[20], "limit": 30}, "history"
            )
            assert [m["id"] for m in older["messages"]] == ids[:20]
            assert older["has_more"] is False


async def test_same_client_msg_id_three_times_is_stored_once_and_acked_three_times(chat_server):
    async with clients(
        ChatClient.join(chat_server, "idem", "ann"),
        ChatClient.join(chat_server, "idem", "bob"),
    ) as (ann, bob):
        for _ in range(3):
            await ann.send({"type": "send", "text": "hello once", "client_msg_id": "c-1"})
        acks = [await ann.expect("ack") for _ in range(3)]
        assert [a["client_msg_id"] for a in acks] == ["c-1"] * 3
        assert len({a["id"] for a in acks}) == 1
        # The same id from another name is another message.
        other = await bob.say("hello once", "c-1")
        assert other > acks[0]["id"]
        history = await bob.request({"type": "history", "limit": 100}, "history")
        assert [(m["name"], m["client_msg_id"]) for m in history["messages"]] == [
            ("ann", "c-1"),
            ("bob", "c-1"),
        ]
        # Each socket saw the message broadcast exactly once.
        assert [m["id"] for m in bob.frames_of("msg")].count(acks[0]["id"]) == 1
        assert [m["id"] for m in ann.frames_of("msg")].count(acks[0]["id"]) == 1
    info = chat_server.get("/api/chat/rooms/idem").body
    assert info["messages"] == 2


async def test_reconnect_with_since_gets_exactly_the_10_messages_missed_in_order(chat_server):
    async with clients(ChatClient.join(chat_server, "resume", "bob")) as (bob,):
        await send_many(bob, [f"before {i}" for i in range(5)], "before")
        ann = await ChatClient.join(chat_server, "resume", "ann")
        last_seen = ann.backlog[-1]["id"]
        await ann.close()
        assert (await bob.expect("left")) == {"type": "left", "name": "ann"}
        missed = await send_many(bob, [f"missed {i}" for i in range(10)], "missed")
        async with clients(ChatClient.join(chat_server, "resume", "ann", since=last_seen)) as (
            again,
        ):
            assert [m["id"] for m in again.backlog] == missed
            assert [m["text"] for m in again.backlog] == [f"missed {i}" for i in range(10)]
            assert again.roster["users"] == ["bob"] and "truncated" not in again.ready
            assert (await bob.expect("joined")) == {"type": "joined", "name": "ann"}


async def test_resume_after_more_than_1000_missed_sends_the_newest_1000_and_truncated(
    chat_server,
):
    # The front closes a client sending over 100 frames/s past a burst of 200 (1013), so
    # the 1,003 messages come from 6 writers in turn, each within its burst.
    writers = [ChatClient.join(chat_server, "trunc", f"w{n}") for n in range(6)]
    async with clients(*writers) as joined:
        ids = []
        for n, writer in enumerate(joined):
            chunk = range(n * 168, min(1003, (n + 1) * 168))
            ids += await send_many(writer, [f"m{i}" for i in chunk], "t")
        assert len(ids) == 1003 and ids == sorted(ids)
        async with clients(ChatClient.join(chat_server, "trunc", "ann", since=ids[1])) as (ann,):
            assert ann.ready == {"type": "ready", "truncated": True}
            assert [m["id"] for m in ann.backlog] == ids[3:]
        async with clients(ChatClient.join(chat_server, "trunc", "cy", since=ids[2])) as (cy,):
            assert cy.ready == {"type": "ready"} and [m["id"] for m in cy.backlog] == ids[3:]


async def test_protocol_errors_have_their_codes_and_the_connection_stays_usable(chat_server):
    async with clients(ChatClient.open(chat_server, "errors")) as (ws,):

        async def error_for(message) -> dict:
            ws.floor = len(ws.frames)
            await ws.send(message)
            frame = await ws.expect("error")
            assert frame["message"], frame
            return frame

        # Before hello: nothing but hello is served.
        sent = {"type": "send", "text": "hi", "client_msg_id": "early"}
        assert (await error_for(sent))["code"] == "not_joined"
        assert (await error_for(sent))["client_msg_id"] == "early"
        assert (await error_for({"type": "typing"}))["code"] == "not_joined"
        assert (await error_for({"type": "history"}))["code"] == "not_joined"
        # Frames that are not the protocol.
        assert (await error_for("{not json"))["code"] == "bad_request"
        assert (await error_for("[1, 2]"))["code"] == "bad_request"
        assert (await error_for(b"\x00binary"))["code"] == "bad_request"
        assert (await error_for({"type": "dance"}))["code"] == "bad_request"
        assert (await error_for({"text": "no type"}))["code"] == "bad_request"
        # Names.
        assert (await error_for({"type": "hello", "name": "x" * 33}))["code"] == "bad_name"
        assert (await error_for({"type": "hello", "name": "  "}))["code"] == "bad_name"
        assert (await error_for({"type": "hello", "name": 7}))["code"] == "bad_name"
        assert (await error_for({"type": "hello", "name": "ann", "since": "x"}))[
            "code"
        ] == "bad_request"
        await ws.hello("ann")
        assert (await error_for({"type": "hello", "name": "ann"}))["code"] == "bad_request"
        # Sizes: text over 2,000 characters, and a frame too big to be a message at all.
        too_long = await error_for({"type": "send", "text": "y" * 2001, "client_msg_id": "big"})
        assert (too_long["code"], too_long["client_msg_id"]) == ("too_long", "big")
        huge = await error_for(json.dumps({"type": "send", "text": "z" * 100_000}))
        assert huge["code"] == "too_long"
        assert (await error_for({"type": "send", "text": ""}))["code"] == "bad_request"
        assert (await error_for({"type": "send", "text": 5}))["code"] == "bad_request"
        assert (await error_for({"type": "history", "limit": 101}))["code"] == "bad_request"
        assert (await error_for({"type": "history", "before": -1}))["code"] == "bad_request"
        # Still usable, and none of the refused sends was stored.
        ws.floor = len(ws.frames)
        assert await ws.say("x" * 2000, "fits") == 1
        assert ws.close_code is None
    assert chat_server.get("/api/chat/rooms/errors").body["messages"] == 1


async def test_presence_roster_joined_left_typing_and_two_tabs_of_one_name(chat_server):
    async with clients(ChatClient.join(chat_server, "presence", "ann")) as (ann,):
        assert ann.roster == {"type": "roster", "users": []}
        bob = await ChatClient.join(chat_server, "presence", "bob")
        assert bob.roster == {"type": "roster", "users": ["ann"]}
        assert await ann.expect("joined") == {"type": "joined", "name": "bob"}
        await bob.send({"type": "typing"})
        assert await ann.expect("typing") == {"type": "typing", "name": "bob"}
        # A second tab of bob is no new arrival, and closing it is no departure.
        tab = await ChatClient.join(chat_server, "presence", "bob")
        assert tab.roster["users"] == ["ann"]
        await tab.close()
        info = chat_server.get("/api/chat/rooms/presence").body
        assert info["online"] == ["ann", "bob"]
        # bob's last socket drops without a close frame: reported left all the same.
        bob.conn.transport.abort()
        assert await ann.expect("left", timeout=20) == {"type": "left", "name": "bob"}
        assert ann.frames_of("joined") == [{"type": "joined", "name": "bob"}]
        assert len(ann.frames_of("left")) == 1
        assert bob.frames_of("typing") == []  # typing goes to the others only
    assert chat_server.get("/api/chat/rooms/presence").body["online"] == []


async def test_unknown_rooms_are_refused(chat_server):
    from websockets.exceptions import InvalidStatus

    for room in ("bad.name", "a" * 65, "f" * 64):
        with pytest.raises(InvalidStatus):
            await ChatClient.open(chat_server, room)
