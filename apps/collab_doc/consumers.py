"""The front of the editor's WebSocket: checks every frame before it reaches the document.

A frame that is not exactly one well-formed y-websocket message never reaches the
object: the socket is closed with 1003 (a text frame, or a message type this server
does not speak), 1007 (malformed: bad lengths, trailing bytes, an update yrs cannot
decode, an awareness state that is not JSON) or 1009 (over the size limits). The
object then hears the close like any other and removes the socket's awareness states.
"""

from __future__ import annotations

import asyncio
import logging

from apps.ratelimit.creation import arefuse_socket
from durable_core.consumers import DurableObjectConsumer, FloodAction, TokenBucket

from . import _protocol as proto
from ._names import document_stub
from .objects import MAX_AWARENESS_BYTES, MAX_MESSAGE_BYTES

logger = logging.getLogger(__name__)

# Sync step 1 and awareness queries per socket: a client sends one of each per connect
# and per resync; beyond a few, each waits for the budget.
EXPENSIVE_BURST = 8.0
EXPENSIVE_PER_SECOND = 0.5


class DocumentConsumer(DurableObjectConsumer):
    """``/ws/docs/<name>/``: one editor of one document."""

    max_message_bytes = MAX_MESSAGE_BYTES
    on_flood = FloodAction.PACE
    _refused = False

    def get_object_stub(self):
        return document_stub(self.scope["url_route"]["kwargs"]["name"])

    async def websocket_connect(self, message: dict) -> None:
        self._expensive = TokenBucket(EXPENSIVE_PER_SECOND, EXPENSIVE_BURST)
        if await arefuse_socket(self):  # a new document costs a creation (issue 16 §9)
            self._refused = True
            return
        await super().websocket_connect(message)

    async def websocket_receive(self, message: dict) -> None:
        if self._refused:
            return  # closing: nothing more reaches the document
        data = message.get("bytes")
        if data is None:
            await self._refuse(proto.CLOSE_UNSUPPORTED, "binary frames only")
            return
        if len(data) > self.max_message_bytes:
            await self._refuse(proto.CLOSE_TOO_BIG, "message too big")
            return
        try:
            parsed = proto.validate_frame(data, max_awareness_bytes=MAX_AWARENESS_BYTES)
        except proto.ProtocolError as exc:
            await self._refuse(exc.close_code, str(exc))
            return
        if parsed.step == proto.SYNC_STEP1 or parsed.kind == proto.MESSAGE_QUERY_AWARENESS:
            wait = self._expensive.wait_for(1)
            if wait:
                await asyncio.sleep(wait)  # paced: nothing more is read meanwhile
                self._expensive.wait_for(1)
            self._expensive.take(1)
        await super().websocket_receive(message)

    async def _refuse(self, code: int, reason: str) -> None:
        logger.info("closing an editor of %s: %s (%s)", self.object_key, reason, code)
        self._refused = True
        # The close reaches the object through websocket.disconnect, as any close does.
        await self.close(code=code, reason=reason[:120])
