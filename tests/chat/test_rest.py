"""The chat's REST routes and pages (CONTRACT § Chat) against a real server."""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests._servers import http
from tests.chat.conftest import ChatClient, clients

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

HEX64 = re.compile(r"[0-9a-f]{64}")


def page(server, path: str) -> tuple[int, str]:
    """Status and HTML of a page."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(server.url + path, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def assert_error(result, status: int, code: str) -> None:
    assert result.status == status, result
    assert result.body["error"] == code and result.body["message"], result


async def test_private_room_create_post_read_and_page(chat_server):
    created = chat_server.post("/api/chat/rooms")
    assert created.status == 201 and HEX64.fullmatch(created.body["room"]), created
    room = created.body["room"]
    base = f"/api/chat/rooms/{room}"
    assert chat_server.get(base).body == {"room": room, "online": [], "messages": 0}
    assert chat_server.get(base + "/messages").body == {"messages": [], "has_more": False}
    posted = []
    for i in range(7):
        result = chat_server.post(base + "/messages", {"name": "api", "text": f"t{i}"})
        assert result.status == 201, result
        posted.append(result.body)
    assert [m["id"] for m in posted] == sorted(m["id"] for m in posted)
    assert set(posted[0]) == {"id", "name", "text", "ts", "client_msg_id"}
    assert posted[0]["client_msg_id"] is None and posted[0]["name"] == "api"
    newest = chat_server.get(base + "/messages?limit=3").body
    assert [m["text"] for m in newest["messages"]] == ["t4", "t5", "t6"] and newest["has_more"]
    older = chat_server.get(f"{base}/messages?limit=3&before={posted[4]['id']}").body
    assert [m["text"] for m in older["messages"]] == ["t1", "t2", "t3"] and older["has_more"]
    oldest = chat_server.get(f"{base}/messages?before={posted[1]['id']}").body
    assert [m["text"] for m in oldest["messages"]] == ["t0"] and not oldest["has_more"]
    assert chat_server.get(base).body["messages"] == 7
    # Private rooms are not listed; their page works.
    listed = chat_server.get("/api/chat/rooms").body["rooms"]
    assert room not in [r["room"] for r in listed]
    status, html = page(chat_server, f"/chat/{room}/")
    assert status == 200 and "Private room" in html


async def test_rest_post_is_idempotent_and_broadcast_to_live_sockets(chat_server):
    async with clients(ChatClient.join(chat_server, "rest-live", "watcher")) as (watcher,):
        body = {"name": "poster", "text": "from REST", "client_msg_id": "r-1"}
        first = chat_server.post("/api/chat/rooms/rest-live/messages", body)
        again = chat_server.post("/api/chat/rooms/rest-live/messages", body)
        assert first.status == again.status == 201 and first.body == again.body
        frame = await watcher.expect("msg")
        assert frame == {"type": "msg", **first.body}
        info = chat_server.get("/api/chat/rooms/rest-live").body
        assert info == {"room": "rest-live", "online": ["watcher"], "messages": 1}
        # A later frame proves the retry was not broadcast a second time.
        await watcher.say("sentinel", "s")
        assert [m["text"] for m in watcher.frames_of("msg")] == ["from REST", "sentinel"]


async def test_rest_refuses_bad_input_with_the_contract_errors(chat_server):
    good = {"name": "ann", "text": "hi"}
    url = "/api/chat/rooms/rest-bad/messages"
    assert_error(chat_server.post(url, {**good, "name": "n" * 33}), 400, "bad_name")
    assert_error(chat_server.post(url, {**good, "name": " "}), 400, "bad_name")
    assert_error(chat_server.post(url, {**good, "text": "t" * 2001}), 400, "too_long")
    assert_error(chat_server.post(url, {**good, "text": " "}), 400, "bad_request")
    assert_error(chat_server.post(url, {"name": "ann"}), 400, "bad_request")
    assert_error(chat_server.post(url, {**good, "client_msg_id": "x" * 129}), 400, "bad_request")
    raw = http("POST", chat_server.url + url, None, headers={"Content-Type": "application/json"})
    assert_error(raw, 400, "bad_request")
    request = urllib.request.Request(
        chat_server.url + url, data=b"{nope", method="POST", headers={"Content-Type": "x"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(request, timeout=10)
    assert refused.value.code == 400
    for query in ("limit=0", "limit=101", "limit=abc", "before=-1", "before=x"):
        assert_error(chat_server.get(f"{url}?{query}"), 400, "bad_request")
    # Unknown rooms: malformed names, and 64-hex strings that are no ID of chat.Room.
    for room in ("bad.name", "a" * 65, "f" * 64, "%20"):
        assert_error(chat_server.get(f"/api/chat/rooms/{room}"), 404, "not_found")
        assert_error(chat_server.get(f"/api/chat/rooms/{room}/messages"), 404, "not_found")
        assert_error(chat_server.post(f"/api/chat/rooms/{room}/messages", good), 404, "not_found")
    assert chat_server.get("/api/chat/rooms/rest-bad").body["messages"] == 0


async def test_lobby_lists_active_public_rooms_most_recent_first(chat_server):
    for room in ("lobby-old", "lobby-new"):
        assert (
            chat_server.post(f"/api/chat/rooms/{room}/messages", {"name": "a", "text": "x"}).status
            == 201
        )
    # Looking at a room stores nothing, so it is not listed.
    assert chat_server.get("/api/chat/rooms/lobby-ghost").status == 200
    # last_active is batched by the runtime: wait (bounded) for both records.
    import time

    deadline = time.monotonic() + 10
    while True:
        rooms = [r["room"] for r in chat_server.get("/api/chat/rooms").body["rooms"]]
        if {"lobby-old", "lobby-new"} <= set(rooms) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rooms.index("lobby-new") < rooms.index("lobby-old"), rooms
    assert "lobby-ghost" not in rooms
    status, html = page(chat_server, "/chat/")
    assert status == 200 and "Active rooms" in html and "lobby-new" in html


async def test_pages_render_and_unknown_rooms_are_a_404_page(chat_server):
    status, html = page(chat_server, "/chat/some-room/")
    assert status == 200 and 'data-room="some-room"' in html and "chat/room.js" in html
    for room in ("bad.name", "f" * 64):
        status, html = page(chat_server, f"/chat/{room}/")
        assert status == 404 and "Room not found" in html
    assert page(chat_server, "/static/chat/room.js")[0] == 200
