"""The chat front: the WebSocket ``/ws/chat/<room>/`` to one ``chat.Room`` each.

Besides routing, the front answers some frames itself, without waking the room: frames
too large to hold a valid message (``too_long``), frames that are not JSON, sends it can
tell the room would refuse (before hello, bad text or ``client_msg_id``), sends over
the client IP's rate limit and hellos or history requests over its read limit
(``rate_limited``). All leave the connection open.

The send limit is charged only for a send the room will store: validation comes first,
with the same checks as the room's (``protocol``), and a retransmit of a
``client_msg_id`` this socket already sent is not charged again (the room acks it with
the stored id and stores nothing).
"""

from __future__ import annotations

import json
import math
from typing import Any

from durable_core.consumers import DurableObjectConsumer
from durable_core.web import scope_client_ip

from .limits import check_read, check_send
from .protocol import (
    MAX_FRAME_BYTES,
    MAX_RESUME_MESSAGES,
    ChatError,
    check_client_msg_id,
    check_message_id,
    check_name,
    check_text,
    cmid_extra,
)
from .rooms import get_room

# client_msg_ids remembered per socket for free retransmits; the oldest are forgotten
# (a retransmit of one of those is charged again, never refused for that reason).
REMEMBERED_CLIENT_MSG_IDS = 1024


class ChatConsumer(DurableObjectConsumer):
    """One client socket of a chat room."""

    # A resume sends roster + up to 1,000 messages + ready in one turn; they all queue
    # here at once, so the buffer must hold them (the default 1,000 would close the
    # socket as a slow reader).
    send_buffer = MAX_RESUME_MESSAGES + 500

    def get_object_stub(self):
        return get_room(self.scope["url_route"]["kwargs"]["room"]).stub

    async def websocket_connect(self, message: dict) -> None:
        self._joined = False
        self._sent_ids: dict[str, None] = {}  # an ordered set, oldest first
        await super().websocket_connect(message)

    async def websocket_receive(self, message: dict) -> None:
        text = message.get("text")
        if getattr(self, "state", None) == "open" and text is not None:
            refused = await self._refuse(text)
            if refused is not None:
                await self.send(text_data=json.dumps(refused.frame()))
                return
        await super().websocket_receive(message)

    async def _refuse(self, text: str) -> ChatError | None:
        """The error this front answers ``text`` with itself, or None to pass it on."""
        if len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
            return ChatError("too_long", f"frames are at most {MAX_FRAME_BYTES} bytes")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: 60,000 "[" and the like
            return ChatError("bad_request", "frames are JSON objects")
        if not isinstance(data, dict):
            return None  # the room answers bad_request
        kind = data.get("type")
        if kind in ("hello", "history"):
            refused = await check_read(scope_client_ip(self.scope))
            if refused is not None:  # a large answer: budgeted per IP (issue 16 §10)
                retry_after = math.ceil(refused.retry_after * 10) / 10
                return ChatError("rate_limited", refused.message, retry_after=retry_after)
        if kind == "hello":
            self._note_hello(data)
        elif kind == "send":
            return await self._check_send(data)
        return None

    def _note_hello(self, data: dict[str, Any]) -> None:
        """A hello the room will accept joins this socket (frames reach it in order)."""
        try:
            check_name(data.get("name"))
            check_message_id(data.get("since"), "since")
        except ChatError:
            return  # the room answers it; the socket stays unjoined
        self._joined = True

    async def _check_send(self, data: dict[str, Any]) -> ChatError | None:
        """Validate a send as the room would, then charge the IP's send limit for it."""
        cmid = data.get("client_msg_id")
        if not self._joined:
            return ChatError("not_joined", "say hello first", **cmid_extra(cmid))
        try:
            check_text(data.get("text"))
            client_msg_id = check_client_msg_id(cmid)
        except ChatError as exc:
            exc.extra.update(cmid_extra(cmid))
            return exc
        sent = self._sent_ids
        if client_msg_id is not None and client_msg_id in sent:
            return None  # a retransmit: the room acks the stored message, stores nothing
        refused = await check_send(scope_client_ip(self.scope))
        if refused is not None:
            extra = {"retry_after": math.ceil(refused.retry_after * 10) / 10, **cmid_extra(cmid)}
            return ChatError("rate_limited", refused.message, **extra)
        if client_msg_id is not None:
            sent[client_msg_id] = None
            if len(sent) > REMEMBERED_CLIENT_MSG_IDS:
                del sent[next(iter(sent))]
        return None
