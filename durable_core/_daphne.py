"""Daphne adaptations for durable WebSockets, installed by ``manage.py runserver``.

- Close codes: Daphne closes through autobahn's ``sendClose``, which only takes 1000 and
  3000-4999; DESIGN §9 needs 1012 (front restarted) and 1013 (try again later).
- Protocol errors (invalid UTF-8, a message over Daphne's size limit) get a close frame
  with their code instead of a dropped TCP connection (``failByDrop=False``).
- Floods and slow readers are handled at the socket, before messages queue up in
  Daphne's unbounded application queue or frames in Twisted's unbounded write buffer:
  a client sending faster than ``max_messages_per_second`` (bursts of ``burst``) is
  closed with 1013, and so is one that stops reading while more than
  ``max_buffered_bytes`` wait to be written to it.
"""

from __future__ import annotations

import time

import daphne.server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

CLOSE_TRY_AGAIN = 1013


class DurableWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol with any close code, flood and slow-reader limits."""

    max_messages_per_second = 100.0
    burst = 200.0
    max_buffered_bytes = 1024 * 1024

    def onOpen(self) -> None:
        self._allowance = self.burst
        self._checked = time.monotonic()
        self._refusing = False
        self._bytes_while_full = 0
        super().onOpen()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self._refusing:
            return
        now = time.monotonic()
        self._allowance = min(
            self.burst, self._allowance + (now - self._checked) * self.max_messages_per_second
        )
        self._checked = now
        if self._allowance < 1:
            self._refusing = True
            self.serverClose(CLOSE_TRY_AGAIN)
            return
        self._allowance -= 1
        super().onMessage(payload, isBinary)

    def serverSend(self, content, binary: bool = False) -> None:
        # Twisted pauses the connection's producer once its write buffer is full
        # (``producerPaused``): from then on, count what we add to it.
        if self.state == self.STATE_OPEN and getattr(self.transport, "producerPaused", False):
            self._bytes_while_full += len(content)
            if self._bytes_while_full > self.max_buffered_bytes:
                if not self._refusing:
                    self._refusing = True
                    self.serverClose(CLOSE_TRY_AGAIN)  # too slow to read: disconnect
                return
        else:
            self._bytes_while_full = 0
        super().serverSend(content, binary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self._refusing:
            # We closed it (flood, slow reader); a reader too slow to take the close frame
            # makes the handshake time out, but the application should hear why.
            wasClean, code = True, CLOSE_TRY_AGAIN
        super().onClose(wasClean, code, reason)

    def serverClose(self, code: int | None = None) -> None:
        code = 1000 if code is None else code
        if code == 1000 or 3000 <= code <= 4999:
            self.sendClose(code=code)
        else:  # 1001-2999: valid on the wire, refused by autobahn's sendClose
            self.sendCloseFrame(code=code, isReply=False)


class DurableWebSocketFactory(WebSocketFactory):
    """Builds ``DurableWebSocketProtocol``s and answers protocol errors with a close."""

    protocol = DurableWebSocketProtocol

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setProtocolOptions(failByDrop=False)


def install() -> None:
    """Make Daphne's server build our WebSocket factory (call before it runs)."""
    daphne.server.WebSocketFactory = DurableWebSocketFactory
