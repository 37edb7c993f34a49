"""Daphne adaptations for durable WebSockets, installed by ``manage.py runserver``.

- Close codes: Daphne closes through autobahn's ``sendClose``, which only takes 1000 and
  3000-4999; DESIGN §9 needs 1012 (front restarted) and 1013 (try again later).
- Protocol errors (invalid UTF-8, a message over Daphne's size limit) get a close frame
  with their code instead of a dropped TCP connection (``failByDrop=False``).
- Backpressure and slow readers are handled at the socket. Daphne puts every received
  frame in the application's queue, without bound: once ``max_queued_messages`` wait
  there, the protocol stops reading the TCP socket until the application has taken half
  of them, so a client sending faster than its consumer admits (the consumer's budget,
  ``durable_core.consumers``) is slowed by TCP rather than growing memory. A client that
  stops reading while more than ``max_buffered_bytes`` wait to be written to it is closed
  with 1013 (Twisted's write buffer has no bound either).
"""

from __future__ import annotations

import daphne.server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import reactor

CLOSE_TRY_AGAIN = 1013


class DurableWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol with any close code, read backpressure and a
    slow-reader limit."""

    max_queued_messages = 32
    resume_check_seconds = 0.005
    max_buffered_bytes = 1024 * 1024

    def onOpen(self) -> None:
        self._refusing = False
        self._bytes_while_full = 0
        self._reading_paused = False
        super().onOpen()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self._refusing:
            return
        super().onMessage(payload, isBinary)
        queue = getattr(self, "application_queue", None)
        if (
            queue is not None
            and not self._reading_paused
            and queue.qsize() >= self.max_queued_messages
        ):
            # Frames already read in this chunk still arrive; no new ones are read.
            self._reading_paused = True
            self.transport.pauseProducing()
            reactor.callLater(self.resume_check_seconds, self._resume_when_drained)

    def _resume_when_drained(self) -> None:
        if not self._reading_paused or self.state == self.STATE_CLOSED:
            return
        if self.application_queue.qsize() > self.max_queued_messages // 2:
            reactor.callLater(self.resume_check_seconds, self._resume_when_drained)
            return
        self._reading_paused = False
        self.transport.resumeProducing()

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
            # We closed it (slow reader); a reader too slow to take the close frame
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
