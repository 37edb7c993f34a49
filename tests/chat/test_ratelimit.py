"""Sending is limited per client IP across all rooms (CONTRACT § Chat), through the rate
limiter app's ``chat`` policy, here ``CHAT_RATE_LIMIT=5/10`` on a real server."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest

from tests.chat.conftest import ChatClient, clients, running_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

LIMIT, PERIOD = 5, 10


def post_raw(server, path: str) -> tuple[int, dict, dict]:
    """POST a message; returns status, headers and JSON body (urllib, no proxy)."""
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps({"name": "api", "text": "over"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


@pytest.fixture
def limited_server(tmp_path):
    with running_server(tmp_path, {"CHAT_RATE_LIMIT": f"{LIMIT}/{PERIOD}"}) as server:
        yield server


async def test_one_ip_is_limited_across_rooms_on_websockets_and_rest(limited_server):
    async with clients(
        ChatClient.join(limited_server, "rl-a", "ann"),
        ChatClient.join(limited_server, "rl-b", "bob"),
    ) as (ann, bob):
        ids = [await ann.say(f"m{i}", f"a{i}") for i in range(LIMIT - 1)]
        ids.append(await bob.say("in another room, same IP", "b0"))
        assert len(ids) == LIMIT
        # The sixth send in the window, from either room, is refused with retry_after.
        await ann.send({"type": "send", "text": "one too many", "client_msg_id": "a-over"})
        refused = await ann.expect("error")
        refused_at = time.monotonic()
        assert refused["code"] == "rate_limited" and refused["client_msg_id"] == "a-over"
        assert 0 < refused["retry_after"] <= PERIOD
        await bob.send({"type": "send", "text": "also too many", "client_msg_id": "b-over"})
        assert (await bob.expect("error"))["code"] == "rate_limited"
        # REST: 429, Retry-After in whole seconds, the same JSON error shape.
        status, headers, body = post_raw(limited_server, "/api/chat/rooms/rl-a/messages")
        assert status == 429 and body["error"] == "rate_limited" and body["message"], body
        assert 0 < body["retry_after"] <= PERIOD
        retry_header = headers.get("Retry-After")
        assert retry_header.isdigit() and 1 <= int(retry_header) <= PERIOD, retry_header
        # Typing and history are not limited, and the connection stays usable.
        await ann.send({"type": "typing"})
        page = await ann.request({"type": "history", "limit": 10}, "history")
        assert [m["text"] for m in page["messages"]] == [f"m{i}" for i in range(LIMIT - 1)]
        assert limited_server.get("/api/chat/rooms/rl-b").body["messages"] == 1
        # After retry_after the same client may send again.
        wait = refused["retry_after"] - (time.monotonic() - refused_at) + 0.3
        await asyncio.sleep(max(0.0, min(wait, PERIOD)))
        assert await ann.say("after the wait", "a-after") > ids[-1]


async def test_only_sends_that_pass_validation_are_charged(tmp_path):
    """Sends before hello, invalid texts and retransmits of a stored ``client_msg_id``
    cost nothing; exactly ``LIMIT`` valid sends are admitted, the next is refused. The
    window is a minute, so a slow machine cannot let the window roll over mid-test."""
    with running_server(tmp_path, {"CHAT_RATE_LIMIT": f"{LIMIT}/60"}) as server:
        async with clients(ChatClient.open(server, "rl-valid", "ann")) as (ann,):

            async def error_code(message: dict) -> str:
                ann.floor = len(ann.frames)
                await ann.send(message)
                return (await ann.expect("error"))["code"]

            for i in range(LIMIT + 2):
                early = {"type": "send", "text": "too early", "client_msg_id": f"e{i}"}
                assert await error_code(early) == "not_joined"
            await ann.hello("ann")
            for text in ("", "   ", "\ud800", 5, "x" * 2001):
                assert await error_code({"type": "send", "text": text}) in (
                    "bad_request",
                    "too_long",
                )
            first = await ann.say("first", "r0")
            for _ in range(LIMIT + 2):  # the same client_msg_id: acked again, not stored
                assert await ann.say("first", "r0") == first
            ids = [await ann.say(f"m{i}", f"m{i}") for i in range(1, LIMIT)]
            assert ids == sorted(ids) and ids[0] > first
            over = {"type": "send", "text": "one too many", "client_msg_id": "over"}
            assert await error_code(over) == "rate_limited"
        assert server.get("/api/chat/rooms/rl-valid").body["messages"] == LIMIT


@pytest.fixture
def read_limited_server(tmp_path):
    env = {"CHAT_RATE_LIMIT": "1000/10", "CHAT_READ_RATE_LIMIT": "3/60"}
    with running_server(tmp_path, env) as server:
        yield server


async def test_reads_with_large_answers_are_limited_per_ip(read_limited_server):
    """Hellos (their backlog or resume holds up to 1,000 messages) and history pages are
    cheap to ask and large to answer, so they spend the IP's ``chat_read`` budget (here 3
    per minute) across sockets and REST (issue 16 §10). Before the fix all 12 hellos were
    answered with their whole backlog."""
    server = read_limited_server
    for i in range(100):
        assert post_raw_message(server, "big-room", f"{'x' * 1900}{i}") == 201
    answered, refused, received = 0, 0, 0
    sockets = [await ChatClient.open(server, "big-room", f"s{i}") for i in range(12)]
    try:
        for i, client in enumerate(sockets):
            await client.send({"type": "hello", "name": f"reader{i}", "since": 0})
            first = await first_frame(client)
            if first["type"] == "error":
                assert first["code"] == "rate_limited" and first["retry_after"] > 0
                refused += 1
            else:
                await client.expect("ready", timeout=30)
                answered += 1
            received += sum(len(json.dumps(f)) for f in client.frames)
        print(f"\n12 hello resumes: {answered} answered, {refused} refused, {received} bytes sent")
        assert answered == 3 and refused == 9
        status, headers, body = get_raw(server, "/api/chat/rooms/big-room/messages?limit=100")
        assert (
            status == 429 and body["error"] == "rate_limited" and int(headers["Retry-After"]) >= 1
        )
    finally:
        for client in sockets:
            await client.close()


async def first_frame(client: ChatClient, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while not client.frames:
        assert time.monotonic() < deadline, f"{client.label}: no answer"
        await asyncio.sleep(0.02)
    return client.frames[0]


def post_raw_message(server, room: str, text: str) -> int:
    request = urllib.request.Request(
        f"{server.url}/api/chat/rooms/{room}/messages",
        data=json.dumps({"name": "filler", "text": text}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return response.status


def get_raw(server, path: str) -> tuple[int, dict, dict]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(server.url + path, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())
