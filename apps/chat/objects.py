"""``chat.Room``: one durable object per chat room (CONTRACT § Chat).

Messages live in the room's own SQLite table; ``id`` is an ``AUTOINCREMENT`` rowid, so
ids strictly increase and are never reused, also after deletes, evictions and a new
owner (the counter is ``sqlite_sequence``, committed with the message). The output gate
releases a turn's frames only after its commit, so a message is stored before anyone
sees it, and an ack is never sent for a message a crash could lose.

Presence comes from the room's WebSockets: a socket that said ``hello`` carries its name
in its attachment, which survives hibernation and failover with the socket record, so
the roster needs no table of its own and cannot drift from the sockets.
"""

from __future__ import annotations

import json
import time
from typing import Any

from durable_core.objects import DurableObject
from durable_core.websockets import ConnectRequest, WebSocket

from .protocol import (
    BACKLOG_MESSAGES,
    MAX_FRAME_BYTES,
    MAX_RESUME_MESSAGES,
    ChatError,
    check_client_id,
    check_client_msg_id,
    check_limit,
    check_message_id,
    check_name,
    check_text,
    cmid_extra,
)

# What a message shows; its ``client_id`` is never shown (it is what makes a sender's
# ``client_msg_id`` theirs alone).
COLUMNS = "id, name, text, ts, client_msg_id"


def _create_messages(sql) -> None:
    sql.execute(
        "CREATE TABLE messages ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT NOT NULL,"
        " text TEXT NOT NULL,"
        " ts REAL NOT NULL,"
        " client_msg_id TEXT)"
    )
    # Idempotent send: one stored message per (name, client_msg_id).
    sql.execute(
        "CREATE UNIQUE INDEX messages_client_msg_id ON messages(name, client_msg_id)"
        " WHERE client_msg_id IS NOT NULL"
    )


def _add_client_id(sql) -> None:
    # Idempotent send by (client_id, client_msg_id) for senders with a client id; by
    # (name, client_msg_id) among those without one, as before (issue 16 §12).
    sql.execute("ALTER TABLE messages ADD COLUMN client_id TEXT")
    sql.execute("DROP INDEX messages_client_msg_id")
    sql.execute(
        "CREATE UNIQUE INDEX messages_name_cmid ON messages(name, client_msg_id)"
        " WHERE client_msg_id IS NOT NULL AND client_id IS NULL"
    )
    sql.execute(
        "CREATE UNIQUE INDEX messages_client_cmid ON messages(client_id, client_msg_id)"
        " WHERE client_msg_id IS NOT NULL AND client_id IS NOT NULL"
    )


MIGRATIONS = [_create_messages, _add_client_id]


def _dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


class Room(DurableObject):
    """A chat room: stored messages, presence from its sockets, typing, history."""

    namespace = "chat.Room"

    async def on_start(self) -> None:
        # Nothing is written for a room that never stored anything: looking at a room
        # (GET its info) creates no file, so the active-rooms list stays honest.
        self._schema_ready = False
        if self.storage.database_size > 0:
            self._ensure_schema()

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            self.storage.migrate(MIGRATIONS)
            self._schema_ready = True

    # -- RPC (the REST API) ------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        """Who is online and how many messages are stored."""
        count = 0
        if self._schema_ready:
            count = self.storage.sql.execute("SELECT count(*) AS n FROM messages").one()["n"]
        return {"online": self._online(), "messages": count}

    async def messages(self, before: int | None = None, limit: int | None = None) -> dict:
        """A page of history: the newest ``limit`` messages older than ``before``."""
        try:
            return self._history(check_message_id(before, "before"), check_limit(limit))
        except ChatError as exc:
            return {"error": exc.code, "message": exc.message}

    async def post(
        self,
        name: str,
        text: str,
        client_msg_id: str | None = None,
        client_id: str | None = None,
    ) -> dict:
        """Store a message (once per ``client_msg_id`` of its sender) and broadcast it."""
        try:
            name = check_name(name)
            text = check_text(text)
            client_msg_id = check_client_msg_id(client_msg_id)
            client_id = check_client_id(client_id)
        except ChatError as exc:
            return {"error": exc.code, "message": exc.message}
        message, _ = self._store(name, text, client_msg_id, client_id)
        return message

    # -- WebSockets ----------------------------------------------------------------------

    async def on_websocket_connect(self, ws: WebSocket, request: ConnectRequest) -> None:
        # Accepted at once; the socket joins the room (roster, broadcasts) with hello.
        self.ctx.accept_websocket(ws)

    async def on_websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        try:
            self._dispatch(ws, message)
        except ChatError as exc:
            ws.send(_dumps(exc.frame()))

    async def on_websocket_close(
        self, ws: WebSocket, code: int, reason: str, was_clean: bool
    ) -> None:
        name = self._name_of(ws)
        # Another tab of the same name keeps that name online.
        if name is not None and name not in self._online():
            self._broadcast({"type": "left", "name": name})

    def _dispatch(self, ws: WebSocket, message: str | bytes) -> None:
        if isinstance(message, bytes):
            raise ChatError("bad_request", "frames are JSON text, not binary")
        if len(message) > MAX_FRAME_BYTES:  # the front already answers these
            raise ChatError("too_long", "frame too large")
        try:
            data = json.loads(message)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the stack
            raise ChatError("bad_request", "frames are JSON objects") from None
        if not isinstance(data, dict):
            raise ChatError("bad_request", "frames are JSON objects")
        kind = data.get("type")
        handler = {
            "hello": self._hello,
            "send": self._send,
            "typing": self._typing,
            "history": self._history_request,
        }.get(kind if isinstance(kind, str) else "")
        if handler is None:
            raise ChatError("bad_request", f"unknown message type {kind!r}")
        if kind != "hello" and self._name_of(ws) is None:
            cmid = data.get("client_msg_id") if kind == "send" else None
            raise ChatError("not_joined", "say hello first", **cmid_extra(cmid))
        handler(ws, data)

    def _hello(self, ws: WebSocket, data: dict) -> None:
        if self._name_of(ws) is not None:
            raise ChatError("bad_request", "already joined")
        name = check_name(data.get("name"))
        since = check_message_id(data.get("since"), "since")
        client_id = check_client_id(data.get("client_id"))
        others = self._online()
        ws.serialize_attachment({"name": name, "client_id": client_id})
        ws.send(_dumps({"type": "roster", "users": [n for n in others if n != name]}))
        backlog, truncated = self._backlog(since)
        for message in backlog:
            ws.send(_dumps({"type": "msg", **message}))
        ready: dict[str, Any] = {"type": "ready"}
        if truncated:
            ready["truncated"] = True
        ws.send(_dumps(ready))
        if name not in others:
            self._broadcast({"type": "joined", "name": name}, exclude=ws)

    def _send(self, ws: WebSocket, data: dict) -> None:
        cmid = data.get("client_msg_id")
        try:
            text = check_text(data.get("text"))
            client_msg_id = check_client_msg_id(cmid)
        except ChatError as exc:
            exc.extra.update(cmid_extra(cmid))
            raise
        attachment = ws.deserialize_attachment()
        message, _ = self._store(
            attachment["name"], text, client_msg_id, attachment.get("client_id")
        )
        ws.send(_dumps({"type": "ack", "client_msg_id": client_msg_id, "id": message["id"]}))

    def _typing(self, ws: WebSocket, data: dict) -> None:
        self._broadcast({"type": "typing", "name": self._name_of(ws)}, exclude=ws)

    def _history_request(self, ws: WebSocket, data: dict) -> None:
        before = check_message_id(data.get("before"), "before")
        page = self._history(before, check_limit(data.get("limit")))
        ws.send(_dumps({"type": "history", "before": before, **page}))

    # -- storage --------------------------------------------------------------------------

    def _store(
        self, name: str, text: str, client_msg_id: str | None, client_id: str | None = None
    ) -> tuple[dict, bool]:
        """Store a message and broadcast it; the same ``client_msg_id`` from the same
        sender again returns the stored one and broadcasts nothing. The sender is the
        client id when there is one (whatever the name), else the name among messages
        sent without one. Returns (message, is_new)."""
        self._ensure_schema()
        sql = self.storage.sql
        if client_msg_id is not None:
            if client_id is not None:
                found = sql.execute(
                    f"SELECT {COLUMNS} FROM messages WHERE client_id = ? AND client_msg_id = ?",
                    client_id,
                    client_msg_id,
                ).fetchall()
            else:
                found = sql.execute(
                    f"SELECT {COLUMNS} FROM messages"
                    " WHERE name = ? AND client_msg_id = ? AND client_id IS NULL",
                    name,
                    client_msg_id,
                ).fetchall()
            if found:
                return found[0], False
        message = sql.execute(
            "INSERT INTO messages (name, text, ts, client_msg_id, client_id)"
            f" VALUES (?, ?, ?, ?, ?) RETURNING {COLUMNS}",
            name,
            text,
            round(time.time(), 3),
            client_msg_id,
            client_id,
        ).one()
        self._broadcast({"type": "msg", **message})
        return message, True

    def _backlog(self, since: int | None) -> tuple[list[dict], bool]:
        if not self._schema_ready:
            return [], False
        sql = self.storage.sql
        if since is None:
            rows = sql.execute(
                f"SELECT {COLUMNS} FROM messages ORDER BY id DESC LIMIT ?", BACKLOG_MESSAGES
            ).fetchall()
            return rows[::-1], False
        rows = sql.execute(
            f"SELECT {COLUMNS} FROM messages WHERE id > ? ORDER BY id DESC LIMIT ?",
            since,
            MAX_RESUME_MESSAGES + 1,
        ).fetchall()
        # More than 1,000 missed: the newest 1,000, and the client pages back for more.
        return rows[:MAX_RESUME_MESSAGES][::-1], len(rows) > MAX_RESUME_MESSAGES

    def _history(self, before: int | None, limit: int) -> dict[str, Any]:
        if not self._schema_ready:
            return {"messages": [], "has_more": False}
        where, params = ("WHERE id < ?", [before]) if before is not None else ("", [])
        rows = self.storage.sql.execute(
            f"SELECT {COLUMNS} FROM messages {where} ORDER BY id DESC LIMIT ?",
            *params,
            limit + 1,
        ).fetchall()
        return {"messages": rows[:limit][::-1], "has_more": len(rows) > limit}

    # -- presence -------------------------------------------------------------------------

    def _name_of(self, ws: WebSocket) -> str | None:
        attachment = ws.deserialize_attachment()
        return attachment.get("name") if isinstance(attachment, dict) else None

    def _members(self) -> list[tuple[WebSocket, str]]:
        """Sockets that said hello, with their names."""
        members = []
        for ws in self.ctx.get_websockets():
            name = self._name_of(ws)
            if name is not None:
                members.append((ws, name))
        return members

    def _online(self) -> list[str]:
        return sorted({name for _, name in self._members()})

    def _broadcast(self, frame: dict[str, Any], exclude: WebSocket | None = None) -> None:
        # One str object for every socket: the runtime sends it once per front.
        text = _dumps(frame)
        for ws, _ in self._members():
            if exclude is None or ws.id != exclude.id:
                ws.send(text)
