"""The chat front: the WebSocket ``/ws/chat/<room>/`` to one ``chat.Room`` each.

Besides routing, the front answers two things itself, without waking the room: frames
too large to hold a valid message (``too_long``) and sends over the client IP's rate
limit (``rate_limited``). Both leave the connection open.
"""

from __future__ import annotations

import json
import math

from durable_core.consumers import DurableObjectConsumer
from durable_core.web import scope_client_ip

from .limits import check_send
from .protocol import MAX_FRAME_BYTES, MAX_RESUME_MESSAGES, ChatError
from .rooms import get_room


class ChatConsumer(DurableObjectConsumer):
    """One client socket of a chat room."""

    # A resume sends roster + up to 1,000 messages + ready in one turn; they all queue
    # here at once, so the buffer must hold them (the default 1,000 would close the
    # socket as a slow reader).
    send_buffer = MAX_RESUME_MESSAGES + 500

    def get_object_stub(self):
        return get_room(self.scope["url_route"]["kwargs"]["room"]).stub

    async def websocket_receive(self, message: dict) -> None:
        text = message.get("text")
        if getattr(self, "state", None) == "open" and text is not None:
            refused = await self._refuse(text)
            if refused is not None:
                await self.send(text_data=json.dumps(refused.frame()))
                return
        await super().websocket_receive(message)

    async def _refuse(self, text: str) -> ChatError | None:
        if len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
            return ChatError("too_long", f"frames are at most {MAX_FRAME_BYTES} bytes")
        try:
            data = json.loads(text)
        except ValueError:
            return None  # the room answers bad_request
        if not isinstance(data, dict) or data.get("type") != "send":
            return None
        retry_after = await check_send(scope_client_ip(self.scope))
        if retry_after is None:
            return None
        extra = {"retry_after": math.ceil(retry_after * 10) / 10}
        cmid = data.get("client_msg_id")
        if isinstance(cmid, str) and len(cmid) <= 128:
            extra["client_msg_id"] = cmid
        return ChatError("rate_limited", "too many messages; wait a moment", **extra)
