"""The front: Channels consumers that hold client WebSockets for durable objects (§9).

An app subclasses ``DurableObjectConsumer`` and says which object a URL addresses
(``get_object_stub``). The front holds the connection; the object decides (accept with
tags, or reject), receives messages and closes, and sends frames that reach the front
in one envelope per front, after the turn that sent them committed. The front drops
frames stamped with an older owner token than one it already saw for that object.

Flow control (issue 16 §3, §10): every client frame spends a per-socket budget of
messages and bytes (``max_messages_per_second`` / ``message_burst``,
``max_bytes_per_second`` / ``byte_burst``), each route choosing what pressure does
(``on_flood``): ``FloodAction.CLOSE`` closes with 1013 (chat, devices: a flood is abuse),
``FloodAction.PACE`` waits until the budget allows the frame (the editor: scripts and
paste handlers send bursts). While a consumer waits it reads nothing more, and the server
stops reading the socket (TCP pushes back on the sender): Daphne through the adapter's
bounded queue (``durable_core._daphne``), uvicorn through websockets' ``max_queue``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import json
import logging
import time
import uuid
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from .exceptions import DurableError
from .stubs import ObjectStub
from .web import scope_client_ip

logger = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012  # the front was declared dead, or the object lost the socket
CLOSE_TRY_AGAIN = 1013  # overloaded, flooding, or too slow to read
CLOSE_TOO_BIG = 1009
CLOSE_NOT_FOUND = 4404


class FloodAction(enum.Enum):
    """What a consumer does with a client frame beyond its budget."""

    CLOSE = "close"  # close with 1013 (try again later)
    PACE = "pace"  # wait until the budget allows it, reading nothing meanwhile


class TokenBucket:
    """``rate`` units per second, at most ``burst`` saved up (monotonic clock)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._at = time.monotonic()

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it is now); ``amount`` is capped at
        the burst so that any single item can pass once the bucket is full."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        missing = min(amount, self.burst) - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, amount: float) -> None:
        """Spend ``amount`` (call after ``wait_for`` said it is there)."""
        self.tokens -= min(amount, self.burst)


class FrontSockets:
    """This process's client sockets, and the newest owner token seen per object."""

    def __init__(self) -> None:
        self.sockets: dict[str, DurableObjectConsumer] = {}
        self._tokens: dict[str, int] = {}
        self._per_object: dict[str, int] = {}
        self.auto_responses: dict[str, tuple[str, str] | None] = {}
        self.dropped_stale = 0

    def register(self, consumer: DurableObjectConsumer) -> None:
        self.sockets[consumer.ws_id] = consumer
        key = consumer.object_key
        self._per_object[key] = self._per_object.get(key, 0) + 1

    def unregister(self, consumer: DurableObjectConsumer) -> None:
        if self.sockets.pop(consumer.ws_id, None) is None:
            return
        key = consumer.object_key
        left = self._per_object.get(key, 1) - 1
        if left:
            self._per_object[key] = left
        else:  # no socket of this object here any more
            self._per_object.pop(key, None)
            self._tokens.pop(key, None)
            self.auto_responses.pop(key, None)

    def counts_by_object(self) -> dict[str, int]:
        """How many sockets this front holds per object (``namespace:hex``)."""
        return dict(self._per_object)

    def deliver(self, envelope: dict[str, Any]) -> None:
        """Fan an owner's envelope out to the sockets it names, in order."""
        key, token = envelope["object"], int(envelope["token"])
        if token < self._tokens.get(key, 0):
            self.dropped_stale += 1  # a paused old owner: never reorder the stream
            return
        if key in self._per_object:
            self._tokens[key] = token
        for frame in envelope["frames"]:
            if not frame["ws"]:  # a message for the front itself
                if "auto_response" in frame:
                    self.set_auto_response(key, frame["auto_response"])
                continue
            for ws_id in frame["ws"]:  # one frame, every socket it goes to on this front
                consumer = self.sockets.get(ws_id)
                if consumer is not None:
                    consumer.push(frame)

    def set_auto_response(self, key: str, pair: str | None) -> None:
        """Answer ``pair[0]`` with ``pair[1]`` for the object ``key`` (None: stop)."""
        self.auto_responses[key] = tuple(json.loads(pair)) if pair else None  # type: ignore[assignment]

    async def close_all(self, code: int) -> None:
        """Close every socket (this front was declared dead: clients reconnect). The
        objects already dropped these sockets, so no close event goes back to them."""
        for consumer in list(self.sockets.values()):
            consumer.push({"close": code, "reason": "front restarted"})


_front = FrontSockets()


def get_front() -> FrontSockets:
    """This process's front."""
    return _front


def client_address(scope: dict) -> str | None:
    """The client's address by the one rule of ``web.resolve_client`` (TRUSTED_PROXIES);
    None when the server gave no peer address."""
    return scope_client_ip(scope) if scope.get("client") else None


class DurableObjectConsumer(AsyncWebsocketConsumer):
    """Base consumer connecting client WebSockets to one durable object each.

    Subclasses implement ``get_object_stub`` (from ``self.scope["url_route"]``); raise
    ``LookupError`` (or return None) for a URL that names no object: the socket is
    refused with 4404. Floods and slow readers are stopped at the socket by the Daphne
    adapter (``durable_core._daphne``), before anything queues up.
    """

    channel_layer_alias = "durable.none"  # frames come through the front, not a layer
    max_message_bytes = 1024 * 1024
    send_buffer = 1000  # frames waiting for the sender task (it does not wait on the client)
    # The per-socket budget of client frames (see the module docstring); each route may
    # set its own. A frame larger than ``byte_burst`` waits for a full bucket.
    max_messages_per_second = 100.0
    message_burst = 200.0
    max_bytes_per_second = 4.0 * 1024 * 1024
    byte_burst = 8.0 * 1024 * 1024
    on_flood = FloodAction.CLOSE

    def get_object_stub(self) -> ObjectStub | None:
        """The object this connection talks to."""
        raise NotImplementedError

    # -- connect --------------------------------------------------------------------

    async def websocket_connect(self, message: dict) -> None:
        from .router import get_router

        self.ws_id = uuid.uuid4().hex
        self.state = "connecting"
        self._messages = TokenBucket(self.max_messages_per_second, self.message_burst)
        self._bytes = TokenBucket(self.max_bytes_per_second, self.byte_burst)
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=self.send_buffer)
        self._sender: asyncio.Task | None = None
        try:
            stub = self.get_object_stub()
        except (LookupError, ValueError, DurableError):
            stub = None
        if stub is None:
            await self.close(CLOSE_NOT_FOUND)
            return
        self.stub = stub
        self.object_key = stub.id.key
        host = get_router().host
        self.front_id = host.host_id if host is not None else ""
        body = {"ws": self.ws_id, "front": self.front_id, "request": self._describe_request()}
        get_front().register(self)  # after anything that can raise: nothing left registered
        try:
            reply = await get_router().send_event(
                stub.id, "connect", json.dumps(body), lifecycle=True
            )
        except Exception as exc:
            # The object may have accepted it before the reply was lost (a timeout, an
            # owner that lapsed): tell it the socket is gone, or it keeps a ghost.
            logger.warning("connect to %s failed: %s", self.object_key, exc)
            get_front().unregister(self)
            self.state = "closed"
            report_socket_closed(stub, self.ws_id, CLOSE_ABNORMAL, "connect failed")
            retryable = isinstance(exc, DurableError) and exc.retryable
            await self.close(CLOSE_TRY_AGAIN if retryable else CLOSE_INTERNAL)
            return
        if not reply.get("accepted"):
            get_front().unregister(self)
            await self.close(int(reply.get("code") or 4403))
            return
        get_front().set_auto_response(self.object_key, reply.get("auto_response"))
        try:
            await self.accept()
        except Exception as exc:  # the client went away during the handshake
            logger.info("socket of %s gone before accept: %s", self.object_key, exc)
            get_front().unregister(self)
            self.state = "closed"
            report_socket_closed(stub, self.ws_id, CLOSE_ABNORMAL, "gone before accept")
            return
        self.state = "open"
        self._sender = asyncio.create_task(self._send_loop())

    def _describe_request(self) -> dict[str, Any]:
        scope = self.scope
        user = scope.get("user")
        headers = {}
        for name, value in (scope.get("headers") or [])[:64]:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")[:4096]
        route = scope.get("url_route") or {}
        return {
            "path": scope.get("path", ""),
            "kwargs": {k: str(v) for k, v in (route.get("kwargs") or {}).items()},
            "query_string": scope.get("query_string", b"").decode("latin-1")[:4096],
            "headers": headers,
            "client": client_address(scope),
            "user": user.get_username() if getattr(user, "is_authenticated", False) else None,
        }

    # -- frames from the object --------------------------------------------------------

    def push(self, frame: dict[str, Any]) -> None:
        """Queue a frame for this client; a reader too slow to keep up is disconnected."""
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            logger.info("closing slow WebSocket %s of %s", self.ws_id, self.object_key)
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    self._queue.get_nowait()
            self._queue.put_nowait({"front_close": CLOSE_TRY_AGAIN, "reason": "too slow"})

    async def _send_loop(self) -> None:
        while True:
            frame = await self._queue.get()
            if "text" in frame:
                await self.send(text_data=frame["text"])
            elif "bytes" in frame:
                await self.send(bytes_data=base64.b64decode(frame["bytes"]))
            elif "close" in frame:
                self.state = "closing"  # closed by the object: no close event goes back
                await self.close(int(frame["close"]), frame.get("reason") or None)
                return
            elif "front_close" in frame:
                await self._close_from_front(int(frame["front_close"]), frame["reason"])
                return

    # -- messages from the client -------------------------------------------------------

    async def dispatch(self, message: dict) -> None:
        """Every client frame spends the socket's budget first, before any handler of a
        subclass sees it (a front that answers frames itself is budgeted the same)."""
        budgeted = message.get("type") == "websocket.receive"
        if budgeted and getattr(self, "state", None) == "open" and not await self._spend(message):
            return
        await super().dispatch(message)

    async def _spend(self, message: dict) -> bool:
        """Charge one frame; False when the socket was closed for flooding instead."""
        text, data = message.get("text"), message.get("bytes")
        size = len(text.encode("utf-8", "surrogatepass")) if text is not None else len(data or b"")
        wait = max(self._messages.wait_for(1), self._bytes.wait_for(size))
        if wait > 0:
            if self.on_flood is FloodAction.CLOSE:
                logger.info("closing flooding WebSocket %s of %s", self.ws_id, self.object_key)
                await self._close_from_front(CLOSE_TRY_AGAIN, "too many messages")
                return False
            await asyncio.sleep(wait)  # nothing more is read meanwhile: TCP pushes back
            if self.state != "open":
                return False
            self._messages.wait_for(1)
            self._bytes.wait_for(size)
        self._messages.take(1)
        self._bytes.take(size)
        return True

    async def websocket_receive(self, message: dict) -> None:
        from .router import get_router

        if self.state != "open":
            return
        text, data = message.get("text"), message.get("bytes")
        size = len(text.encode()) if text is not None else len(data or b"")
        if size > self.max_message_bytes:
            await self._close_from_front(CLOSE_TOO_BIG, "message too big")
            return
        auto = get_front().auto_responses.get(self.object_key)
        if auto is not None and text is not None and text == auto[0]:
            await self.send(text_data=auto[1])
            return
        body = {"ws": self.ws_id}
        if text is not None:
            body["text"] = text
        else:
            body["bytes"] = base64.b64encode(data or b"").decode()
        try:
            reply = await get_router().send_event(self.stub.id, "message", json.dumps(body))
        except DurableError as exc:
            if exc.overloaded:
                await self._close_from_front(CLOSE_TRY_AGAIN, "object overloaded")
            elif exc.retryable:
                # The message may not have reached the object (failover, host gone):
                # the client must learn it, reconnect and resync, not lose it silently.
                logger.info("message to %s not delivered: %s", self.object_key, exc)
                await self._close_from_front(CLOSE_RESTART, "object moving; reconnect")
            else:
                logger.info("message to %s failed: %s", self.object_key, exc)
            return
        if reply.get("unknown"):
            await self._close_from_front(CLOSE_RESTART, "socket unknown to its object")

    async def _close_from_front(self, code: int, reason: str) -> None:
        try:
            await self.close(code, reason)
        finally:  # the object must drop the socket's record whatever the server did
            await self._report_close(code, reason, clean=True)

    # -- close ----------------------------------------------------------------------------

    async def websocket_disconnect(self, message: dict) -> None:
        code = int(message.get("code") or 1006)
        await self._report_close(code, "", clean=code != 1006)
        raise StopConsumer()

    async def _report_close(self, code: int, reason: str, *, clean: bool) -> None:
        from .router import get_router

        if getattr(self, "state", None) not in ("open", "closing"):
            return
        was_open = self.state == "open"
        self.state = "closed"
        if self._sender is not None:
            self._sender.cancel()
        get_front().unregister(self)
        if not was_open:
            return  # the object closed it: its record is already gone
        body = {"ws": self.ws_id, "code": code, "reason": reason, "clean": clean}
        try:
            await get_router().send_event(self.stub.id, "close", json.dumps(body), lifecycle=True)
        except Exception as exc:
            logger.info(
                "close of a socket of %s not delivered (%s): retrying", self.object_key, exc
            )
            report_socket_closed(self.stub, self.ws_id, code, reason, clean=clean)


CLOSE_ABNORMAL = 1006
_CLOSE_RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0)
_close_reports: set[asyncio.Task] = set()


def report_socket_closed(
    stub: ObjectStub, ws_id: str, code: int, reason: str, *, clean: bool = False
) -> None:
    """Tell the object, in the background and with bounded retries, that socket
    ``ws_id`` is gone, so that it never keeps a ghost in its roster. A close of a socket
    the object does not know is harmless ({"unknown": true}), so resending is safe."""
    task = asyncio.create_task(_report_until_delivered(stub, ws_id, code, reason, clean))
    _close_reports.add(task)
    task.add_done_callback(_close_reports.discard)


async def _report_until_delivered(
    stub: ObjectStub, ws_id: str, code: int, reason: str, clean: bool
) -> None:
    from .router import get_router

    body = json.dumps({"ws": ws_id, "code": code, "reason": reason, "clean": clean})
    last: Exception | None = None
    for pause in (0.0, *_CLOSE_RETRY_PAUSES):
        await asyncio.sleep(pause)
        try:
            await get_router().send_event(stub.id, "close", body, lifecycle=True)
            return
        except Exception as exc:
            last = exc
    logger.error("socket %s of %s may linger: close not delivered (%s)", ws_id, stub.id.key, last)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """The last WebSocket route of a project: any other path is refused with 4404 (the
    handshake fails cleanly) instead of the router raising "No route found"."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)
