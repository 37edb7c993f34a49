"""WebSockets on the owner's side: socket records, handles, and outgoing frames (DESIGN §9).

A socket is held by a front (a Daphne process); the object sees a ``WebSocket`` handle.
Accepted sockets are recorded in the object's own storage (``_do_sockets``), so they
survive the object's eviction (hibernation) and its owner's failure: a new owner keeps
talking to the same fronts. Frames a turn sends leave after its commit, grouped per
front into one envelope, stamped with the owner's fencing token so that a front drops
frames of an older owner.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import metrics
from .events import Event, get_current_turn, internal_event
from .exceptions import (
    InvalidArgument,
    MethodNotFound,
    StorageError,
    StorageLimitExceeded,
    WebSocketError,
)

if TYPE_CHECKING:
    from .turns import ActiveObject

logger = logging.getLogger(__name__)

MAX_TAGS = 10
MAX_TAG_LENGTH = 256
MAX_ATTACHMENT_BYTES = 2048
MAX_FRAME_BYTES = 1024 * 1024


@dataclass
class ConnectRequest:
    """What the front knows about a connecting client (``on_websocket_connect``)."""

    path: str
    kwargs: dict[str, Any]
    query_string: str
    headers: dict[str, str]
    client: str | None
    user: str | None  # the authenticated username, if any


@dataclass
class WebSocket:
    """The object's handle on one client socket."""

    id: str
    front: str
    tags: list[str] = field(default_factory=list)
    attachment: str | None = None
    _active: ActiveObject | None = field(default=None, repr=False, compare=False)
    accepted: bool = True
    close_code: int | None = None

    def send(self, data: str | bytes) -> None:
        """Send a text or binary frame; it leaves after this turn commits."""
        self._require_active().emit(self, make_frame(data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (after this turn commits); its record is removed now."""
        if not (code == 1000 or 3000 <= code <= 4999):
            raise InvalidArgument("close codes are 1000 or 3000-4999")
        active = self._require_active()
        if not self.accepted:
            self.close_code = code  # a rejection during on_websocket_connect
            return
        active.sockets.remove(self.id)
        active.emit(self, {"close": code, "reason": reason[:123]})

    def serialize_attachment(self, value: Any) -> None:
        """Keep a small JSON value with the socket (≤ 2 KiB); it survives hibernation."""
        text = json.dumps(value, separators=(",", ":"))
        if len(text.encode()) > MAX_ATTACHMENT_BYTES:
            raise StorageLimitExceeded(f"attachments are limited to {MAX_ATTACHMENT_BYTES} bytes")
        self.attachment = text
        if self.accepted:
            self._require_active().sockets.save(self)

    def deserialize_attachment(self) -> Any:
        """The value given to ``serialize_attachment``, or None."""
        return None if self.attachment is None else json.loads(self.attachment)

    def _require_active(self) -> ActiveObject:
        if self._active is None:
            raise InvalidArgument("this WebSocket handle belongs to no running object")
        return self._active


_last_frame: tuple[str | bytes, dict] | None = None


def make_frame(data: str | bytes) -> dict:
    """The wire form of a frame. Sending the same data to many sockets in a row (a
    broadcast) yields the same dict, which the owner sends once per front."""
    global _last_frame
    if _last_frame is not None and _last_frame[0] is data:
        return _last_frame[1]
    if isinstance(data, bytes):
        frame = {"bytes": base64.b64encode(data).decode()}
    elif isinstance(data, str):
        frame = {"text": data}
    else:
        raise InvalidArgument("ws.send() takes str or bytes")
    if len(data) > MAX_FRAME_BYTES:
        raise StorageLimitExceeded(f"a WebSocket frame is limited to {MAX_FRAME_BYTES} bytes")
    _last_frame = (data, frame)
    return frame


def check_tags(tags: list[str] | tuple[str, ...]) -> list[str]:
    """Validate tags: at most 10 strings of 1-256 characters."""
    tags = list(tags)
    if len(tags) > MAX_TAGS:
        raise InvalidArgument(f"at most {MAX_TAGS} tags per WebSocket")
    for tag in tags:
        if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_LENGTH:
            raise InvalidArgument(f"tags are strings of 1-{MAX_TAG_LENGTH} characters")
    return tags


class SocketTable:
    """The object's accepted sockets: an in-memory view of ``_do_sockets``."""

    def __init__(self, active: ActiveObject) -> None:
        self._active = active
        self._sockets: dict[str, WebSocket] | None = None

    def _load(self) -> dict[str, WebSocket]:
        if self._sockets is None:
            self._sockets = {}
            db = self._active.db
            if db.conn is not None or db.exists():
                conn = db.open()
                for ws_id, front, tags, attachment in conn.execute(
                    "SELECT ws_id, front, tags, attachment FROM _do_sockets"
                ):
                    self._sockets[ws_id] = WebSocket(
                        ws_id, front, json.loads(tags), attachment, self._active
                    )
        return self._sockets

    def reset(self) -> None:
        """Forget the cache (after a rollback); the next use reloads from storage."""
        self._sockets = None

    def all(self, tag: str | None = None) -> list[WebSocket]:
        """Accepted sockets, optionally only those with ``tag``."""
        sockets = self._load().values()
        return [ws for ws in sockets if tag is None or tag in ws.tags]

    def get(self, ws_id: str) -> WebSocket | None:
        """The socket ``ws_id``, if it is recorded."""
        return self._load().get(ws_id)

    def fronts(self) -> set[str]:
        """The fronts holding this object's sockets."""
        return {ws.front for ws in self._load().values()}

    def add(self, ws: WebSocket) -> None:
        """Record an accepted socket (a storage write of the current turn)."""
        self._load()[ws.id] = ws
        self.save(ws)

    def save(self, ws: WebSocket) -> None:
        """Write a socket's tags and attachment."""
        self._active.db.ensure_writable().execute(
            "INSERT OR REPLACE INTO _do_sockets(ws_id, front, tags, attachment, accepted) "
            "VALUES (?, ?, ?, ?, strftime('%s','now'))",
            (ws.id, ws.front, json.dumps(ws.tags), ws.attachment),
        )

    def remove(self, ws_id: str) -> WebSocket | None:
        """Drop a socket's record (a storage write of the current turn)."""
        ws = self._load().pop(ws_id, None)
        if ws is not None:
            self._active.db.ensure_writable().execute(
                "DELETE FROM _do_sockets WHERE ws_id=?", (ws_id,)
            )
        return ws


# Close codes that mean the socket failed rather than ended: abnormal closure (1006, also
# a dead front), protocol or data errors, too big, server error, overload, TLS.
ERROR_CLOSE_CODES = frozenset({1002, 1003, 1006, 1007, 1008, 1009, 1010, 1011, 1013, 1014, 1015})


class SocketEvents:
    """The WebSocket part of ``ActiveObject``: events from fronts, frames to them."""

    def enqueue_front_dead(self, front: str) -> None:
        """Close every socket held by a dead front (``on_websocket_close``, unclean)."""
        self.enqueue(internal_event("ws", "front_dead", json.dumps({"front": front})))

    async def _send_frames(self) -> None:
        """One envelope per front, in order, stamped with this activation's token."""
        frames, self.outbox = self.outbox, []
        metrics.WS_MESSAGES.labels("out").inc(sum(1 for _front, ws_id, _f in frames if ws_id))
        by_front: dict[str, list[dict]] = {}
        for front, ws_id, frame in frames:
            batch = by_front.setdefault(front, [])
            last = batch[-1] if batch else None
            if last is not None and ws_id and last["body"] is frame:
                last["ws"].append(ws_id)  # a broadcast: one copy of the frame per front
            else:
                batch.append({"body": frame, "ws": [ws_id] if ws_id else []})
        for batch in by_front.values():
            for i, entry in enumerate(batch):
                batch[i] = dict(entry.pop("body"), **entry)
        for front, batch in by_front.items():
            self.frame_seq += 1
            envelope = {
                "type": "durable.frames",
                "object": self.key,
                "token": self.lease.token,
                "seq": self.frame_seq,
                "frames": batch,
            }
            await self.host.send_to_front(front, envelope)

    def emit(self, ws: WebSocket, frame: dict) -> None:
        """Queue a frame of the running turn (released after its commit)."""
        state = get_current_turn()
        if state is None or state.active is not self or state.gate_open:
            raise StorageError("WebSocket frames can only be sent from inside a turn")
        state.outbox.append((ws.front, ws.id, frame))

    def emit_control(self, front: str, control: dict) -> None:
        """Queue a message for a front about this object (e.g. its auto-response)."""
        state = get_current_turn()
        if state is None or state.active is not self:
            raise StorageError("front messages can only be sent from inside a turn")
        state.outbox.append((front, "", control))

    async def _websocket_event(self, event: Event) -> Any:
        data = json.loads(event.payload)
        instance = self.instance
        if event.method == "connect":
            ws = WebSocket(data["ws"], data["front"], _active=self, accepted=False)
            self._connecting = ws
            handler = getattr(instance, "on_websocket_connect", None)
            try:
                if handler is None:
                    self.accept_websocket(ws)
                else:
                    await handler(ws, ConnectRequest(**data["request"]))
            finally:
                self._connecting = None
            if not ws.accepted:
                return {"accepted": False, "code": ws.close_code or 4403}
            return {"accepted": True, "auto_response": self.db.get_meta("ws_auto")}
        if event.method == "front_dead":
            closed = [ws for ws in self.sockets.all() if ws.front == data["front"]]
            for ws in closed:
                self.sockets.remove(ws.id)
                await self._call_close_handler(ws, 1006, "front gone", False)
            return {"closed": len(closed)}
        ws = self.sockets.get(data["ws"])
        if ws is None:
            return {"unknown": True}  # closed meanwhile, or never accepted
        if event.method == "message":
            metrics.WS_MESSAGES.labels("in").inc()
            message = data["text"] if "text" in data else base64.b64decode(data["bytes"])
            handler = getattr(instance, "on_websocket_message", None)
            if handler is not None:
                await handler(ws, message)
            return {}
        if event.method == "close":
            self.sockets.remove(ws.id)
            await self._call_close_handler(ws, data["code"], data["reason"], data["clean"])
            return {}
        raise MethodNotFound(f"unknown WebSocket event {event.method!r}")

    async def _call_close_handler(self, ws: WebSocket, code: int, reason: str, clean: bool):
        on_error = getattr(self.instance, "on_websocket_error", None)
        if code in ERROR_CLOSE_CODES and on_error is not None:
            # A socket that failed (dropped, or closed for a protocol violation or an
            # overload) is reported as an error first, then closed like any other.
            await self._run_socket_handler(on_error, ws, WebSocketError(code, reason))
        on_close = getattr(self.instance, "on_websocket_close", None)
        if on_close is not None:
            await self._run_socket_handler(on_close, ws, code, reason, clean)

    async def _run_socket_handler(self, handler: Any, ws: WebSocket, *args: Any) -> None:
        """Run a close or error handler in a savepoint of its own: if it raises, its
        writes are undone and the error logged, but the socket is gone all the same (its
        record was removed in this turn) and the other handler still runs. A handler
        that awaited another object committed at that gate: what it wrote before is
        kept, and only what came after is undone."""
        name = self.db.savepoint(runtime=True)
        try:
            await handler(ws, *args)
        except Exception:
            self.db.release_savepoint(name, ok=False)
            logger.exception("%s: %s of socket %s raised", self.key, handler.__name__, ws.id)
        else:
            self.db.release_savepoint(name, ok=True)

    def accept_websocket(self, ws: WebSocket, tags: list[str] | tuple[str, ...] = ()) -> None:
        """Accept the connecting socket ``ws`` (only during ``on_websocket_connect``)."""
        if ws is not self._connecting:
            raise InvalidArgument("accept_websocket() takes the socket being connected")
        ws.tags = check_tags(tags)
        ws.accepted = True
        self.sockets.add(ws)
        self._front_links.add(ws.front)
