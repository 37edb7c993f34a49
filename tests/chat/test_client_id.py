"""Sends deduplicated by a random client id (issue 16 §12): a client that says hello with
a ``client_id`` owns its ``client_msg_id``s, so nobody who can guess them (a REST client
with the same name, say) can pre-claim its messages; the page keeps its id across
reconnects, so a resend after a reconnect is still stored once. Clients that send no
``client_id`` keep the old rule: one message per (name, ``client_msg_id``)."""

from __future__ import annotations

import secrets
import sqlite3

import pytest

from apps.chat.objects import MIGRATIONS
from tests.chat.conftest import ChatClient, clients

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _client_id() -> str:
    return secrets.token_urlsafe(16)


async def test_a_message_id_claimed_first_by_someone_else_under_my_name_does_not_swallow_mine(
    chat_server,
):
    room = "cid-preclaim"
    # The attacker guesses ann's next ids and posts them first, as "ann", over REST.
    for cmid in ("c1", "c2"):
        body = {"name": "ann", "text": f"forged {cmid}", "client_msg_id": cmid}
        assert chat_server.post(f"/api/chat/rooms/{room}/messages", body).status == 201
    async with clients(ChatClient.join(chat_server, room, "ann", client_id=_client_id())) as (ann,):
        first = await ann.say("my real first message", "c1")
        mine = await ann.expect("msg", where=lambda f: f["id"] == first)
        assert mine["text"] == "my real first message"
        await ann.say("my real second message", "c2")
    page = chat_server.get(f"/api/chat/rooms/{room}/messages").body["messages"]
    assert [m["text"] for m in page] == [
        "forged c1",
        "forged c2",
        "my real first message",
        "my real second message",
    ]


async def test_a_resend_after_a_reconnect_with_the_same_client_id_is_stored_once(chat_server):
    room, client_id = "cid-resend", _client_id()
    async with clients(ChatClient.join(chat_server, room, "bea", client_id=client_id)) as (bea,):
        sent = await bea.say("once only", "m-1")
    # A new socket (the page reconnected), same client id: the pending message goes again,
    # also under a changed name.
    async with clients(ChatClient.join(chat_server, room, "bea2", client_id=client_id)) as (again,):
        assert await again.say("once only", "m-1") == sent
    # Over REST with the same client id too.
    body = {"name": "bea", "text": "once only", "client_msg_id": "m-1", "client_id": client_id}
    assert chat_server.post(f"/api/chat/rooms/{room}/messages", body).body["id"] == sent
    assert chat_server.get(f"/api/chat/rooms/{room}").body["messages"] == 1


async def test_without_a_client_id_the_name_and_message_id_still_deduplicate(chat_server):
    room = "cid-legacy"
    async with clients(ChatClient.join(chat_server, room, "cy")) as (cy,):
        sent = await cy.say("hello", "k-1")
    async with clients(ChatClient.join(chat_server, room, "cy")) as (cy,):
        assert await cy.say("hello", "k-1") == sent
        # Someone with a client id may use the same message id: it is theirs.
        async with clients(ChatClient.join(chat_server, room, "cy", client_id=_client_id())) as (
            other,
        ):
            assert await other.say("hello from the other cy", "k-1") != sent
    assert chat_server.get(f"/api/chat/rooms/{room}").body["messages"] == 2


async def test_the_client_id_is_never_shown_and_a_bad_one_is_refused(chat_server):
    room, client_id = "cid-hidden", _client_id()
    async with clients(
        ChatClient.join(chat_server, room, "dee", client_id=client_id),
        ChatClient.join(chat_server, room, "eve"),
    ) as (dee, eve):
        await dee.say("secret-free", "s-1")
        seen = await eve.expect("msg")
        history = await eve.request({"type": "history"}, "history")
        bad = await (await ChatClient.open(chat_server, room, "bad")).request(
            {"type": "hello", "name": "fay", "client_id": "short"}, "error"
        )
    rest = chat_server.get(f"/api/chat/rooms/{room}/messages").body
    for shown in (seen, history, rest):
        assert client_id not in str(shown) and "client_id" not in str(shown)
    assert bad["code"] == "bad_request"
    refused = chat_server.post(
        f"/api/chat/rooms/{room}/messages", {"name": "f", "text": "t", "client_id": "x" * 65}
    )
    assert refused.status == 400 and refused.body["error"] == "bad_request"


class _FakeSql:
    """Stands in for the room's ``storage.sql`` over a plain SQLite connection (a fake:
    only ``execute`` with positional parameters, which is all the migrations use)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, query: str, *params):
        return self.conn.execute(query, params)


def test_a_room_stored_before_client_ids_keeps_its_messages_and_their_dedup():
    sql = _FakeSql(sqlite3.connect(":memory:"))
    MIGRATIONS[0](sql)
    insert = "INSERT INTO messages (name, text, ts, client_msg_id) VALUES (?, ?, 0, ?)"
    sql.execute(insert, "ann", "old", "c1")
    for step in MIGRATIONS[1:]:
        step(sql)
    assert sql.execute("SELECT name, text, client_id FROM messages").fetchall() == [
        ("ann", "old", None)
    ]
    with pytest.raises(sqlite3.IntegrityError):  # the old rule holds for old senders
        sql.execute(insert, "ann", "again", "c1")
    with_id = "INSERT INTO messages (name, text, ts, client_msg_id, client_id) VALUES (?,?,0,?,?)"
    sql.execute(with_id, "ann", "mine", "c1", "k" * 16)
    with pytest.raises(sqlite3.IntegrityError):
        sql.execute(with_id, "bob", "also mine", "c1", "k" * 16)
